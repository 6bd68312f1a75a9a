"""SCAFFOLD (hand-written; to be replaced by the export of nbs/00_tokenizer.ipynb)"""
import os
from pathlib import Path
import tiktoken

VOCAB_SIZE, EOT_ID = 50304, 50256
ASSETS = Path(__file__).parent / "assets"

class Tokenizer:
    def __init__(self, enc): self.enc, self.eot_id, self.n_vocab, self.vocab_size = enc, enc.eot_token, enc.n_vocab, VOCAB_SIZE
    def encode(self, text): return self.enc.encode_ordinary(text)
    def decode(self, ids): return self.enc.decode(list(ids))

def get_tokenizer():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ASSETS / "tiktoken"))
    return Tokenizer(tiktoken.get_encoding("gpt2"))
