"Exercise checkers, one module per lesson (the appendix notebooks in `nbs/exercises/`)."
