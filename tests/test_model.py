"The config contract (tinygpt.model.GPTConfig, tinygpt.moe.MoEConfig / config_from_dict / is_moe) and GPT's input checks."
import dataclasses, json
import pytest, torch
from tinygpt.model import GPT, GPTConfig, MAX_PARAMS, PRESETS as DENSE
from tinygpt.moe import MoEConfig, PRESETS, config_from_dict, is_moe, MOE_FIELDS

TINY = dict(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)

def test_presets_and_published_parameter_counts():
    assert list(DENSE) == ["tinygpt", "tiny", "tiny-shortlist"] and list(PRESETS) == ["tinygpt", "tinygpt-moe", "tiny", "tiny-moe", "tiny-shortlist"]
    assert not any(is_moe(c) for c in DENSE.values()) and [is_moe(c) for c in PRESETS.values()] == [False, True, False, True, False]
    with torch.device("meta"):
        assert GPT(PRESETS["tinygpt"]).n_params() == 51_237_888          # the published TinyGPT
        assert GPT(PRESETS["tinygpt-moe"]).n_params() == 84_788_224      # the published TinyGPT-MoE

def test_dense_config_has_only_dense_fields():
    assert [f.name for f in dataclasses.fields(GPTConfig)] == ["vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "vocab_kept"]
    assert set(MOE_FIELDS) == {"n_experts", "top_k_experts", "expert_hidden", "moe_aux_coef", "moe_z_coef", "router_noise"}

@pytest.mark.parametrize("name", ["tinygpt", "tinygpt-moe", "tiny", "tiny-moe"])
def test_round_trip_through_json(name):
    c = PRESETS[name]
    back = config_from_dict(json.loads(json.dumps(c.to_dict())))
    assert back == c and type(back) is type(c)

@pytest.mark.parametrize("bad,field", [
    ({"dropout": "0.1"}, "dropout"), ({"n_layer": 1e9}, "n_layer"), ({"n_layer": True}, "n_layer"), ({"n_layer": 2.0}, "n_layer"),
    ({"vocab_size": 10**12}, "vocab_size"), ({"vocab_size": 1e12}, "vocab_size"), ({"n_layer": 10**9}, "n_layer"),
    ({"block_size": 0}, "block_size"), ({"n_embd": -8}, "n_embd"), ({"dropout": float("nan")}, "dropout"),
    ({"dropout": 1.0}, "dropout"), ({"n_head": None}, "n_head"), ({"n_embd": 100, "n_head": 8}, "n_head"),
    ({"n_heads": 4}, "n_heads"), ({"n_layer": 1000, "n_embd": 8192}, "MAX_PARAMS"), ({"vocab_size": 2**21, "n_embd": 2**13}, "MAX_PARAMS"),
    ({"n_experts": 4, "router_noise": -5}, "router_noise"), ({"n_experts": 4, "router_noise": float("inf")}, "router_noise"),
    ({"n_experts": 4, "top_k_experts": 5}, "top_k_experts"), ({"n_experts": 4, "top_k_experts": True}, "top_k_experts"),
    ({"n_experts": 4, "expert_hidden": 1e9}, "expert_hidden"), ({"n_experts": 10**9}, "n_experts"),
    ({"n_experts": 4, "moe_aux_coef": "0.01"}, "moe_aux_coef"), ({"n_experts": 4, "moe_z_coef": -1}, "moe_z_coef"),
    ({"n_experts": 4, "n_expert": 2}, "n_expert"), ({"top_k_experts": 2}, "n_experts"), ({"n_experts": "4"}, "n_experts"),
    ({"n_experts": 1024, "expert_hidden": 2**18}, "MAX_PARAMS")])
def test_bad_configs_give_one_clear_error(bad, field):
    with pytest.raises(ValueError, match=field) as e: config_from_dict({**TINY, **bad})
    assert "\n" not in str(e.value)

def test_not_a_dict():
    for bad in (None, [1, 2], "tiny", 3):
        with pytest.raises(ValueError, match="dict"): config_from_dict(bad)
        with pytest.raises(ValueError, match="dict"): GPTConfig.from_dict(bad)

def test_dense_reader_refuses_moe_fields_and_old_dense_layout_reads_as_dense():
    with pytest.raises(ValueError, match="n_experts"): GPTConfig.from_dict({**TINY, "n_experts": 4})
    old = {**TINY, "n_experts": 0, "top_k_experts": 2, "expert_hidden": 1024, "moe_aux_coef": 0.0, "moe_z_coef": 0.0, "router_noise": 0.0}
    c = config_from_dict(old)
    assert type(c) is GPTConfig and c == GPTConfig(**TINY)
    with pytest.raises(ValueError): MoEConfig(**{**TINY, "n_experts": 0})

def test_numbers_are_normalised():
    c = config_from_dict({**TINY, "dropout": 0, "n_experts": 2, "top_k_experts": 1, "expert_hidden": 8, "moe_aux_coef": 1})
    assert isinstance(c.dropout, float) and isinstance(c.moe_aux_coef, float) and c.to_dict()["dropout"] == 0.0
    assert MAX_PARAMS >= 10**9                                         # the published models are far below the budget

def test_gpt_builds_either_kind_without_importing_moe_in_model():
    import tinygpt.model as M
    assert "moe" not in open(M.__file__).read().split("# %%", 2)[1]   # the import cell of lesson 04 names no MoE module
    torch.manual_seed(0)
    dense = GPT(GPTConfig(**TINY)); moe = GPT(MoEConfig(**TINY, n_experts=2, top_k_experts=1, expert_hidden=8))
    assert type(dense.blocks[0].mlp).__name__ == "MLP" and type(moe.blocks[0].mlp).__name__ == "MoE"
    assert is_moe(moe) and not is_moe(dense)
    with pytest.raises(TypeError, match="GPTConfig"): GPT(TINY)

def test_published_layouts_match_the_presets():
    "Every tensor of the published checkpoints (key list in the course's shared reference, beside the repo) fits a preset model."
    from pathlib import Path
    refs = [d / "shared" / "reference" / "seed_state_dicts.json" for d in Path(__file__).resolve().parents]
    ref = next((r for r in refs if r.exists()), None)
    if ref is None: pytest.skip("no shared/reference/seed_state_dicts.json beside the repository")
    from tinygpt.hub import course_key
    seed = json.loads(ref.read_text())
    for arch in ("tinygpt", "tinygpt-moe"):
        with torch.device("meta"): m = GPT(PRESETS[arch])
        ours = {k: tuple(v.shape) for k, v in m.state_dict().items()}
        theirs = {course_key(k): tuple(s) for k, s in seed[arch]["state_dict"]}
        assert theirs == ours and seed[arch]["params"] == m.n_params(), arch
