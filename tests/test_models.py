"""The mini family: Granite's muP multipliers checked against a hand-written float64 forward pass,
and the family's shape requirements (scales, width-depth variants, MoE)."""

import math

import pytest
import torch

from sparsing_lib.models import (
    DIM_MODEL_BASE,
    INIT_STD,
    MINI,
    SCALE_DEPTH,
    SCALE_EMB,
    TINY,
    ModelSpec,
    build_model,
    config_table,
    get_spec,
)


def rms_norm(x, w, eps):
    return w * x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps)


def rope(x, theta):
    """Rotary embedding, half-split convention, on [B, H, T, dh]."""
    dh, T = x.shape[-1], x.shape[-2]
    inv = 1.0 / theta ** (torch.arange(0, dh, 2, dtype=torch.float64) / dh)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1), torch.cat([ang.sin()] * 2, -1)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def reference_logits(model, ids, act):
    """The paper's MiniCPM forward pass written out: emb·12, residual·1.4/√L, logits of h/(d/256)."""
    c = model.config
    sd = {k: v.double() for k, v in model.state_dict().items()}
    L, d, H = c.num_hidden_layers, c.hidden_size, c.num_attention_heads
    dh, T = d // H, ids.shape[1]
    f = torch.relu if act == "relu" else torch.nn.functional.silu
    h = sd["model.embed_tokens.weight"][ids] * SCALE_EMB
    mask = torch.full((T, T), -math.inf, dtype=torch.float64).triu(1)
    for i in range(L):
        p = f"model.layers.{i}."
        x = rms_norm(h, sd[p + "input_layernorm.weight"], c.rms_norm_eps)
        q, k, v = (x @ sd[p + f"self_attn.{n}_proj.weight"].T for n in "qkv")
        q, k, v = (t.view(*t.shape[:2], H, dh).transpose(1, 2) for t in (q, k, v))
        theta = c.rope_parameters["rope_theta"]
        q, k = rope(q, theta), rope(k, theta)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + mask, -1) @ v
        att = att.transpose(1, 2).reshape(*h.shape) @ sd[p + "self_attn.o_proj.weight"].T
        h = h + att * SCALE_DEPTH / math.sqrt(L)
        x = rms_norm(h, sd[p + "post_attention_layernorm.weight"], c.rms_norm_eps)
        ffn = (f(x @ sd[p + "mlp.gate_proj.weight"].T) * (x @ sd[p + "mlp.up_proj.weight"].T)) @ sd[
            p + "mlp.down_proj.weight"
        ].T
        h = h + ffn * SCALE_DEPTH / math.sqrt(L)
    h = rms_norm(h, sd["model.norm.weight"], c.rms_norm_eps)
    return (h / (d / DIM_MODEL_BASE)) @ sd["model.embed_tokens.weight"].T  # tied lm_head


@pytest.mark.parametrize("act", ["relu", "silu"])
@pytest.mark.parametrize("spec", [TINY, ModelSpec("t", 64, 3, head_dim=16)])
def test_granite_matches_the_papers_mup_forward(spec, act):
    torch.manual_seed(0)
    model = build_model(spec, act, vocab_size=97, seed=1).double().eval()
    with torch.no_grad():  # make norms non-trivial so their placement matters
        for p in model.parameters():
            if p.ndim == 1:
                p.uniform_(0.5, 1.5)
    ids = torch.randint(0, 97, (2, 11))
    with torch.no_grad():
        got = model(input_ids=ids).logits
    ref = reference_logits(model, ids, act)
    # 1e-5, not 1e-12: transformers builds the RoPE angles in float32 even for a float64 model
    assert torch.linalg.norm(got - ref) / torch.linalg.norm(ref) < 1e-5


def test_multiplier_values_and_architecture():
    spec = MINI["mini-192x4"]
    m = build_model(spec, "silu", vocab_size=300)
    c = m.config
    assert c.embedding_multiplier == 12
    assert c.residual_multiplier == pytest.approx(1.4 / math.sqrt(4))
    assert c.logits_scaling == pytest.approx(192 / 256)
    assert c.attention_multiplier == pytest.approx(1 / math.sqrt(32))
    assert c.intermediate_size == 480 and c.hidden_act == "silu"
    assert c.num_key_value_heads == c.num_attention_heads == 6  # MHA
    assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()  # tied
    assert all(not n.endswith("bias") for n, _ in m.named_parameters())


def test_init_follows_mup_width_scaling():
    spec = MINI["mini-336x7"]
    m = build_model(spec, "relu", vocab_size=1000)
    q = m.model.layers[0].self_attn.q_proj.weight
    assert q.std().item() == pytest.approx(INIT_STD / math.sqrt(336 / 256), rel=0.02)
    assert m.model.embed_tokens.weight.std().item() == pytest.approx(INIT_STD, rel=0.02)


@pytest.mark.parametrize("name", ["mini-160x3", "wd-272x2", "moe-192x4-e16"])
def test_non_embedding_count_matches_the_built_model(name):
    spec = get_spec(name)
    m = build_model(spec, "relu", vocab_size=50)
    counted = sum(p.numel() for n, p in m.named_parameters() if p.ndim >= 2 and "embed" not in n and "router" not in n)
    assert counted == spec.non_embedding_params


def test_family_scales_width_depth_and_moe():
    scales = [s for s in MINI.values() if s.kind == "scale"]
    assert len(scales) >= 5
    assert all(48 <= s.width_depth <= 56 for s in scales)
    sizes = [s.non_embedding_params for s in scales]
    assert max(sizes) / min(sizes) >= 10
    assert all(s.d_ff == round(2.5 * s.d_model) for s in scales)
    base = MINI["mini-192x4"]
    wd = [s for s in MINI.values() if s.kind == "width_depth"] + [base]
    ratios = sorted(s.width_depth for s in wd)
    assert len(ratios) >= 7 and ratios[0] < 10 and ratios[-1] > 300
    assert all(abs(s.non_embedding_params / base.non_embedding_params - 1) <= 0.10 for s in wd)
    moe = [s for s in MINI.values() if s.kind == "moe"]
    assert {s.n_experts for s in moe} == {16, 30, 60}
    assert all(abs(s.non_embedding_params / base.non_embedding_params - 1) <= 0.05 for s in moe)
    m = build_model(moe[0], "relu", vocab_size=50)
    assert type(m).__name__ == "GraniteMoeForCausalLM"
    assert m(input_ids=torch.randint(0, 50, (1, 5))).logits.shape == (1, 5, 50)


def test_relu_model_has_exact_zeros_and_bad_input_is_refused():
    m = build_model(TINY, "relu", vocab_size=40)
    seen = []
    m.model.layers[0].mlp.act_fn.register_forward_hook(lambda mod, i, o: seen.append(o))
    m(input_ids=torch.randint(0, 40, (1, 8)))
    assert (seen[0] == 0).float().mean() > 0.2
    with pytest.raises(ValueError, match="activation"):
        build_model(TINY, "gelu")
    with pytest.raises(ValueError, match="unknown model"):
        get_spec("mini-1x1")


def test_config_table_lists_every_spec():
    t = config_table(vocab_size=1000)
    assert list(t["name"]) == list(MINI)
    assert (t["embedding_params"] == t["d_model"] * 1000).all()


def test_moe_expert_weights_follow_autocast():
    spec = ModelSpec("t-moe", 32, 2, kind="moe", head_dim=16, n_experts=8, top_k=2)
    model = build_model(spec, "relu", vocab_size=64)
    experts = model.model.layers[0].block_sparse_moe.experts
    x = torch.arange(64).view(2, 32) % 64
    assert experts.gate_up_proj.dtype == torch.float32
    plain = model(input_ids=x, labels=x).loss
    with torch.autocast("cpu", torch.bfloat16):
        assert experts.gate_up_proj.dtype == torch.bfloat16 and experts.down_proj.dtype == torch.bfloat16
        loss = model(input_ids=x, labels=x).loss
    assert loss != plain and abs(loss.item() - plain.item()) < 0.05 * plain.item()  # bf16 rounding, same model
    loss.backward()
    master = experts.parametrizations.gate_up_proj.original
    assert master.dtype == torch.float32 and master.grad is not None and master.grad.abs().sum() > 0
