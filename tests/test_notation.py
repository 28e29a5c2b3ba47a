"""The arrow notation: parsing, errors, size inference, the compiled core against torch's cells and
hand-written references, and the loss lines against the agents' advantage code."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import pytest
import torch
from gymnasium import spaces

from rlmem.agents.rollout import RolloutBuffer
from rlmem.cores import core_options, make_core
from rlmem.cores.base import StepCore
from rlmem.notation import NotationError, builtin_specs, compile_source, compile_spec, evaluate, parse
from rlmem.notation.cli import main as cli_main

F, H, T, B = 5, 7, 11, 4
BUILTIN = ["elman", "gated", "gru", "gru_layered", "gru_textbook", "gru_torch", "lstm"]


def core(spec: str, seed: int = 0, dtype=torch.float32, **options):
    torch.manual_seed(seed)
    return make_core("notation", F, spec=spec, hidden_size=H, **options).to(dtype)


def data(seed: int = 0, dtype=torch.float32, p: float = 0.25):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, F, generator=g, dtype=dtype)
    starts = torch.rand(T, B, generator=g) < p
    starts[0] = True
    return x, starts


def loop(cell, x, starts, init):
    """A reference time loop: reset to ``init`` where ``starts`` is set, then ``cell(x_t, state)``."""
    state, ys = init, []
    for t in range(x.shape[0]):
        state = tuple(torch.where(starts[t].unsqueeze(-1), i, s) for i, s in zip(init, state))
        state = cell(x[t], state)
        ys.append(state[0])
    return torch.stack(ys), state


# ---------------------------------------------------------------------------- parsing
SEED_LINES = """
X --[M_1|relu]-> h_1 --[M_2]-> p => y
X --[M_1|relu]-> h_1 --[M_2|softmax]-> p => one_hot(y)
0 -> h_0
X_t|h_{t-1} --[Enc]-> h_t --[Gen]-> p => y_t
h_{t-1}|x_t -> c_t
x_t|(h_{t-1}*r_t) --[H|tanh]-> l_t
h_{t-1} * (1 - z_t) + l_t -> h_t
h_0 := 0
h_{t-1},x_t --[Enc]-> h_t
reset() -> S_0
step(S_{t-1}) -> S_t,O_t,r_t,d_t
S_{t-1},a_{t-1} --[step]-> S_t,O_t,r_t,d_t
O_t --[Value]-> V_t => V_{t-1} * gamma + r_t
O_t --[clip_grad(Policy)]-> pi_t $ A_t * log(pi_t)
TD_t + gamma * lam * A_{t+1} * (1-d_t) -> A_t
O_{t-1} --[Q]-> q_{t-1} $ r_t + one_hot(argmax(q_t))
"""


def test_the_notations_lines_parse_and_print_back():
    program = parse(SEED_LINES)
    shown = [eq.show() for eq in program.equations]
    assert "x_t|(h_{t-1} * r_t) --[H|tanh]-> l_t" in shown
    assert "TD_t + gamma * lam * A_{t+1} * (1 - d_t) -> A_t" in shown
    assert "0 -> h_0" in shown  # h_0 := 0
    assert "O_t --[clip_grad(Policy)]-> pi_t $ A_t * log(pi_t)" in shown
    assert parse("\n".join(shown)).equations[4].show() == shown[4]  # printing is a fixed point
    ref = program.equations[3].sources[0].left
    assert (ref.base, ref.offset) == ("X", 0)
    assert [(t.ref.base, t.ref.literal) for t in program.equations[0].steps[0].targets] == [("h", "1")]


def test_the_seeds_macro_form_compiles_to_the_same_cell():
    macro = """Enc: h_{t-1},x_t
h_{t-1}|x_t -> c_t
c_t --[R|sigmoid]-> r_t
c_t --[Z|sigmoid]-> z_t
x_t|(h_{t-1}*r_t) --[H|tanh]-> l_t
h_{t-1} * (1 - z_t) + l_t -> h_t
return h_t
h_0 := 0
h_{t-1},x_t --[Enc]-> h_t
"""
    plain, inline = core("gru"), core(macro)
    assert list(inline.spec_parameters()) == ["Enc.R", "Enc.Z", "Enc.H"]
    inline.load_spec_parameters({f"Enc.{k}": v for k, v in plain.spec_parameters().items()})
    x, starts = data()
    torch.testing.assert_close(inline(x, inline.initial_state(B), starts)[0], plain(x, plain.initial_state(B), starts)[0])


def test_lines_in_any_order_compile_to_the_same_core():
    text = compile_spec("gru_textbook", F, H).graph.source.text
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    shuffled = "\n".join(lines[::-1]) + "\nreturn h_t\n"
    a, b = core("gru_textbook"), core(shuffled)
    b.load_spec_parameters(a.spec_parameters())
    x, starts = data()
    torch.testing.assert_close(a(x, a.initial_state(B), starts)[0], b(x, b.initial_state(B), starts)[0])


# ---------------------------------------------------------------------------- built-in specs
def test_builtin_specs_ship_in_the_config_package():
    folder = resources.files("rlmem.configs").joinpath("core", "specs")
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(".arrow")) == [f"{n}.arrow" for n in BUILTIN]
    assert builtin_specs() == BUILTIN
    assert "o_t --[O|sigmoid]-> o_t" in folder.joinpath("lstm.arrow").read_text()  # the mend is explained
    assert "p_t --[O|sigmoid]-> o_t" in folder.joinpath("lstm.arrow").read_text()


def test_config_lists_the_cores_options():
    import yaml

    cfg = yaml.safe_load(resources.files("rlmem.configs").joinpath("core", "notation.yaml").read_text())
    assert cfg.pop("name") == "notation"
    assert cfg == core_options("notation")


@pytest.mark.parametrize("spec", BUILTIN)
def test_fast_forward_equals_the_step_api_and_acting(spec):
    """The generated chunk loop equals StepCore's generic loop over prepare/step, step-by-step
    acting, and the run without the final state."""
    c = core(spec)
    x, starts = data()
    state = c.initial_state(B)
    y, s, extras = c(x, state, starts)
    y_api, s_api, _ = StepCore.forward(c, x, state, starts)
    torch.testing.assert_close(y, y_api, rtol=0, atol=0)
    ys, st = [], state
    with torch.no_grad():
        for t in range(T):
            yt, st, _ = c(x[t:t + 1], st, starts[t:t + 1])
            ys.append(yt)
    torch.testing.assert_close(torch.cat(ys), y.detach(), rtol=1e-6, atol=1e-6)
    y_last, _, _ = c(x, state, starts, need_state=False)
    torch.testing.assert_close(y_last, y)
    assert extras == {} and set(s) == set(state)


def test_layers_reading_one_operand_share_one_matmul():
    spec = compile_spec("gru_textbook", F, H)
    by_operand = {s.operand.label: ([m.attr.param for g, _, _ in s.entries for m in g.members], s.phase, s.addmm)
                  for s in spec.sites}
    assert by_operand == {"x_t": (["R", "Z", "H"], "pre", False), "h_{t-1}": (["R", "Z"], "step", True),
                          "(h_{t-1}*r_t)": (["H"], "step", True)}
    loop_body = spec.code.split("for t in range")[1].split("return")[0]
    assert loop_body.count("torch.addmm") == 2 and "F.linear" not in loop_body
    assert loop_body.count("torch.sigmoid") == 1  # r and z in one call
    lstm = compile_spec("lstm", F, H)
    assert [len(s.entries[0][0].members) for s in lstm.sites] == [4, 4]
    assert lstm.code.split("for t in range")[1].split("return")[0].count("torch.addmm") == 1


def test_the_last_step_skips_work_only_the_next_step_needs():
    text = """0 -> s_0
x_t|s_{t-1} --[A|tanh]-> y_t
y_t --[B|tanh]-> s_t
return y_t
"""
    c = core(text)
    x, starts = data()
    y, state, _ = c(x, c.initial_state(B), starts)
    y2, none, _ = c(x, c.initial_state(B), starts, need_state=False)
    assert state is not None and none is None
    torch.testing.assert_close(y, y2)


def test_several_outputs_and_targets():
    text = """0 -> h_0
x_t|h_{t-1} --[G|sigmoid]-> r_t, z_t[3]
x_t --[U|tanh]-> u_t
h_{t-1} * r_t + u_t -> h_t
return h_t, z_t
"""
    spec = compile_source(text, F, H)
    assert spec.output_size == H + 3 and spec.params["G"].out_size == H + 3
    c = core(text)
    y, _, _ = c(*data()[:1], c.initial_state(B), data()[1])
    assert y.shape == (T, B, H + 3)


def test_softmax_normalizes_each_layer_of_a_fused_group_on_its_own():
    text = """0 -> h_0
x_t|h_{t-1} --[A|softmax]-> a_t[3]
x_t|h_{t-1} --[B|softmax]-> b_t[4]
x_t|h_{t-1} --[C|tanh]-> h_t
exp(h_t) - relu(h_t) -> e_t
return a_t, b_t, e_t
"""
    c = core(text)
    assert len(c.compiled.sites) == 2  # x_t and h_{t-1}, each one matmul for A, B and C
    x, starts = data()
    y, _, _ = c(x, c.initial_state(B), starts)
    torch.testing.assert_close(y[..., :3].sum(-1), torch.ones(T, B))
    torch.testing.assert_close(y[..., 3:7].sum(-1), torch.ones(T, B))
    assert y.shape[-1] == 7 + H


def test_spec_parameters_round_trip():
    a, b = core("lstm", seed=1), core("lstm", seed=2)
    b.load_spec_parameters(a.spec_parameters())
    for k, (w, bias) in a.spec_parameters().items():
        torch.testing.assert_close(b.spec_parameters()[k][0], w)
        torch.testing.assert_close(b.spec_parameters()[k][1], bias)
    with pytest.raises(KeyError, match="no parameter"):
        b.load_spec_parameters({"Q": a.spec_parameters()["F"]})
    assert sum(p.numel() for p in a.parameters()) == compile_spec("lstm", F, H).parameter_count == 4 * H * (F + H + 1)


# ---------------------------------------------------------------------------- against torch and references
def test_gru_torch_spec_equals_torch_gru_cell_in_float64():
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(F, H).double()
    c = core("gru_torch", dtype=torch.float64)
    wi, wh, bi, bh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    rows = lambda w, k: w[k * H:(k + 1) * H]  # noqa: E731  torch's order: r, z, n
    with torch.no_grad():
        c.load_spec_parameters({
            "R": (torch.cat([rows(wh, 0), rows(wi, 0)], 1), rows(bi, 0) + rows(bh, 0)),
            "Z": (torch.cat([rows(wh, 1), rows(wi, 1)], 1), rows(bi, 1) + rows(bh, 1)),
            "Nh": (rows(wh, 2), rows(bh, 2)), "Nx": (rows(wi, 2), rows(bi, 2))})
    x, starts = data(dtype=torch.float64)
    weight = torch.randn(T, B, H, dtype=torch.float64)
    y, _, _ = c(x, c.initial_state(B), starts)
    (y * weight).sum().backward()
    zero = (torch.zeros(B, H, dtype=torch.float64),)
    y_ref, _ = loop(lambda xt, s: (cell(xt, s[0]),), x, starts, zero)
    (y_ref * weight).sum().backward()
    torch.testing.assert_close(y, y_ref)
    g = c.spec_gradients()
    torch.testing.assert_close(g["R"][0], torch.cat([rows(wh.grad, 0), rows(wi.grad, 0)], 1))
    torch.testing.assert_close(g["Z"][0], torch.cat([rows(wh.grad, 1), rows(wi.grad, 1)], 1))
    torch.testing.assert_close(g["R"][1], rows(bi.grad, 0))
    torch.testing.assert_close(g["R"][1], rows(bh.grad, 0))
    torch.testing.assert_close(g["Nh"][0], rows(wh.grad, 2))
    torch.testing.assert_close(g["Nh"][1], rows(bh.grad, 2))
    torch.testing.assert_close(g["Nx"][0], rows(wi.grad, 2))
    torch.testing.assert_close(g["Nx"][1], rows(bi.grad, 2))


def _gru_weights_from_torch_cell(cell):
    """The Cho form's layers from a GRUCell's weights: R and Z read h|x, H reads x|(h*r); Z is
    negated because the Cho form writes the candidate with z where torch keeps the state with it."""
    wi, wh, bi, bh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    rows = lambda w, k: w[k * H:(k + 1) * H]  # noqa: E731
    return {"R": (torch.cat([rows(wh, 0), rows(wi, 0)], 1), rows(bi, 0) + rows(bh, 0)),
            "Z": (-torch.cat([rows(wh, 1), rows(wi, 1)], 1), -(rows(bi, 1) + rows(bh, 1))),
            "H": (torch.cat([rows(wi, 2), rows(wh, 2)], 1), rows(bi, 2) + rows(bh, 2))}


@pytest.mark.parametrize("spec", ["gru_textbook", "gru"])
def test_cho_form_specs_equal_a_hand_written_reference_in_float64(spec):
    """The textbook spec (and the original, without z on the candidate) against the cell written by hand."""
    torch.manual_seed(0)
    cell = torch.nn.GRUCell(F, H).double()
    weights = {k: (w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_())
               for k, (w, b) in _gru_weights_from_torch_cell(cell).items()}
    c = core(spec, dtype=torch.float64)
    c.load_spec_parameters({k: (w.detach(), b.detach()) for k, (w, b) in weights.items()})
    (wr, br), (wz, bz), (wn, bn) = weights["R"], weights["Z"], weights["H"]

    def cho(xt, s):
        h = s[0]
        hx = torch.cat([h, xt], -1)
        r, z = torch.sigmoid(hx @ wr.T + br), torch.sigmoid(hx @ wz.T + bz)
        l = torch.tanh(torch.cat([xt, h * r], -1) @ wn.T + bn)  # noqa: E741
        return ((1 - z) * h + (z * l if spec == "gru_textbook" else l),)

    x, starts = data(dtype=torch.float64)
    weight = torch.randn(T, B, H, dtype=torch.float64)
    y, _, _ = c(x, c.initial_state(B), starts)
    (y * weight).sum().backward()
    y_ref, _ = loop(cho, x, starts, (torch.zeros(B, H, dtype=torch.float64),))
    (y_ref * weight).sum().backward()
    torch.testing.assert_close(y, y_ref)
    for k, (gw, gb) in c.spec_gradients().items():
        torch.testing.assert_close(gw, weights[k][0].grad)
        torch.testing.assert_close(gb, weights[k][1].grad)
    if spec == "gru_textbook":  # the reset gate's place is what keeps it apart from torch's GRUCell
        y_torch, _ = loop(lambda xt, s: (cell(xt, s[0]),), x, starts, (torch.zeros(B, H, dtype=torch.float64),))
        assert not torch.allclose(y, y_torch, atol=1e-3)


def test_lstm_spec_equals_torch_lstm_cell_in_float64():
    torch.manual_seed(0)
    cell = torch.nn.LSTMCell(F, H).double()
    c = core("lstm", dtype=torch.float64)
    wi, wh, bi, bh = cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh
    rows = lambda w, k: w[k * H:(k + 1) * H]  # noqa: E731  torch's order: i, f, g, o
    order = {"I": 0, "F": 1, "C": 2, "O": 3}
    with torch.no_grad():
        c.load_spec_parameters({k: (torch.cat([rows(wh, i), rows(wi, i)], 1), rows(bi, i) + rows(bh, i))
                                for k, i in order.items()})
    x, starts = data(dtype=torch.float64)
    weight = torch.randn(T, B, H, dtype=torch.float64)
    y, state, _ = c(x, c.initial_state(B), starts)
    (y * weight).sum().backward()
    zeros = torch.zeros(B, H, dtype=torch.float64)
    y_ref, (h_ref, c_ref) = loop(lambda xt, s: cell(xt, s), x, starts, (zeros, zeros))
    (y_ref * weight).sum().backward()
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(state["c"], c_ref)
    for k, i in order.items():
        gw, gb = c.spec_gradients()[k]
        torch.testing.assert_close(gw, torch.cat([rows(wh.grad, i), rows(wi.grad, i)], 1))
        torch.testing.assert_close(gb, rows(bi.grad, i))


def test_layered_macro_calls_have_their_own_parameters():
    layered, one = core("gru_layered"), core("gru_textbook")
    params = layered.spec_parameters()
    assert list(params) == ["Cell1.R", "Cell1.Z", "Cell1.H", "Cell2.R", "Cell2.Z", "Cell2.H"]
    assert not torch.equal(params["Cell1.R"][0][:, :H], params["Cell2.R"][0][:, :H])
    x, starts = data()
    y, state, _ = layered(x, layered.initial_state(B), starts)
    one.load_spec_parameters({k[6:]: v for k, v in params.items() if k.startswith("Cell1.")})
    first, _, _ = one(x, one.initial_state(B), starts)
    torch.testing.assert_close(state["a"], first[-1])


# ---------------------------------------------------------------------------- errors
ERRORS = [
    ("0 -> h_0\nh_{t-1}|x_t --[W|tanh] h_t\n", 2, 22, "expected ']->'"),
    ("0 -> h_0\nx_t|q_t --[W|tanh]-> h_t\n", 2, 5, "undefined name q_t"),
    ("x_t|h_{t-1} --[W|tanh]-> h_t\n", 1, 5, "h has no initial value"),
    ("0 -> h_0\nx_t --[A|relu]-> a_t\na_t --[B]-> b_t\nh_{t-1} * 0.5 + b_t -> h_t\n", 2, 18,
     "cannot infer the size of a_t"),
    ("0 -> h_0\nx_t + h_{t-1} -> h_t[3]\n", 2, 1, "size mismatch"),
    ("0 -> h_0\nx_t|h_{t+1} --[W|tanh]-> h_t\n", 2, 5, "later step"),
    ("0 -> h_0\nx_t|a_t --[W|tanh]-> h_t\nh_t * 2 -> a_t\n", 3, 1, "depends on itself"),
    ("0 -> h_0\nx_t|h_{t-1} --[W|gelu]-> h_t\n", 2, 18, "unknown activation 'gelu'"),
    ("0 -> h_0\nx_t|h_{t-1} --[W|tanh]-> h_t => y_t\n", 2, 30, "regression target"),
    ("0 -> h_0\nlog(x_t)|h_{t-1} --[W|tanh]-> h_t\n", 2, 1, "unknown function 'log'"),
]


@pytest.mark.parametrize("text, line, col, message", ERRORS)
def test_errors_name_file_line_column_and_show_a_caret(text, line, col, message):
    with pytest.raises(NotationError) as info:
        compile_source(text, F, H, file="cell.arrow")
    err = info.value
    head, source_line, caret = str(err).split("\n")
    assert head.startswith(f"cell.arrow:{line}:{col}: ") and message in head, head
    assert source_line.strip() == text.splitlines()[line - 1].strip()
    assert caret.index("^") == source_line.index(source_line.strip()) + col - 1
    assert isinstance(err, ValueError)  # the config check reports it as a refused core.spec


def test_check_prints_the_compiled_core(tmp_path, capsys):
    path = tmp_path / "leaky.arrow"
    path.write_text("0 -> s_0\nx_t|s_{t-1} --[A|sigmoid]-> a_t\nx_t --[U|tanh]-> u_t\n"
                    "s_{t-1} * (1 - a_t) + a_t * u_t -> s_t\n")
    assert cli_main(["check", str(path), "--input-size", "6", "--hidden-size", "8"]) == 0
    out = capsys.readouterr().out
    for part in ("equations", "sizes", "state", "parameters", "matmuls", "generated code", "def run(",
                 "A  [8, 14] + [8]", "total 176 values", "s: [B, 8], initial value 0"):
        assert part in out, part


def test_check_reports_errors_with_exit_code_2_and_no_traceback(tmp_path):
    path = tmp_path / "bad.arrow"
    path.write_text("0 -> h_0\nx_t|q_t --[W|tanh]-> h_t\n")
    out = subprocess.run([sys.executable, "-m", "rlmem.notation", "check", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert lines[0] == f"error: {path}:2:5: undefined name q_t: no line defines it (the step's input is x_t)"
    assert lines[2].strip() == "^^^" and "Traceback" not in out.stderr


def test_unknown_spec_lists_the_builtin_ones(capsys):
    assert cli_main(["check", "gruu"]) == 2
    assert "built-in specs: elman, gated, gru" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not exist"):
        make_core("notation", F, spec="./missing.arrow")


# ---------------------------------------------------------------------------- the loss lines
GAE_LINES = """0.999 -> gamma
0.95 -> lam
reset() -> S_0
S_{t-1} --[step]-> S_t,O_t,r_t,d_t
O_t --[Value]-> V_t => V_{t-1} * gamma + r_t
V_{t+1}*gamma + r_t - V_t -> TD_t
TD_t + gamma * lam * A_{t+1} * (1-d_t) -> A_t
O_t --[clip_grad(Policy)]-> pi_t $ A_t * log(pi_t)
"""
A2C_LINE = "V_{t+1}*gamma + r_t - V_t -> A_t"


def rollout(ends: bool, gae_lambda: float):
    """A hand-made rollout and the advantages and returns rlmem's agents compute for it."""
    n_steps, n_envs = 7, 3
    g = torch.Generator().manual_seed(5)
    rewards = torch.randn(n_steps, n_envs, generator=g)
    values = torch.randn(n_steps, n_envs, generator=g)
    dones = torch.zeros(n_steps, n_envs, dtype=torch.bool)
    if ends:
        dones[2, 0] = dones[4, 1] = dones[6, 2] = dones[0, 2] = True
    last = torch.randn(n_envs, generator=g)
    buf = RolloutBuffer(spaces.Discrete(2), spaces.Discrete(2), n_steps=n_steps, n_envs=n_envs, chunk_len=n_steps,
                        state_template={"h": torch.zeros(n_envs, 1)}, device=torch.device("cpu"))
    buf.rewards, buf.values, buf.dones = rewards, values, dones
    buf.compute_advantages(last, gamma=0.999, gae_lambda=gae_lambda)
    return {"r": rewards, "V": values, "d": dones}, {"V": last}, buf


def test_the_seeds_gae_lines_give_the_agents_advantages():
    recorded, final, buf = rollout(ends=False, gae_lambda=0.95)
    out = evaluate(GAE_LINES, recorded, final, want=["TD", "A"])
    torch.testing.assert_close(out["A"], buf.advantages)
    # PPO's value target: the lambda-return
    torch.testing.assert_close(evaluate(GAE_LINES + "A_t + V_t -> R_t\n", recorded, final, want=["R"])["R"], buf.returns)


def test_at_episode_ends_the_td_line_needs_the_same_cut_as_the_gae_line():
    """The original cuts A_{t+1} at d_t but bootstraps V_{t+1} across the end; the agents cut both."""
    recorded, final, buf = rollout(ends=True, gae_lambda=0.95)
    seed = evaluate(GAE_LINES, recorded, final, want=["A"])["A"]
    assert not torch.allclose(seed, buf.advantages)
    mended = GAE_LINES.replace("V_{t+1}*gamma + r_t - V_t -> TD_t", "V_{t+1}*gamma*(1-d_t) + r_t - V_t -> TD_t")
    torch.testing.assert_close(evaluate(mended, recorded, final, want=["A"])["A"], buf.advantages)


@pytest.mark.parametrize("ends", [False, True])
def test_the_a2c_advantage_line_is_gae_with_lambda_zero(ends):
    recorded, final, buf = rollout(ends=ends, gae_lambda=0.0)
    line = A2C_LINE.replace("gamma +", "gamma*(1-d_t) +") if ends else A2C_LINE
    out = evaluate(f"0.999 -> gamma\n{line}\n", recorded, final, want=["A"])
    torch.testing.assert_close(out["A"], buf.advantages)


def test_the_value_target_line():
    """Read literally, the original regresses V_t on gamma V_{t-1} + r_t, which needs a V before the first
    step; the target the agents use (with lambda 0) is r_t + gamma V_{t+1}."""
    recorded, final, buf = rollout(ends=False, gae_lambda=0.0)
    with pytest.raises(NotationError, match=r"V_\{t-1\} at the first step needs an initial value of V") as info:
        evaluate(GAE_LINES, recorded, final, want=["V=>"])
    assert info.value.span.line == 5
    mended = GAE_LINES.replace("=> V_{t-1} * gamma + r_t", "=> V_{t+1} * gamma + r_t")
    torch.testing.assert_close(evaluate(mended, recorded, final, want=["V=>"])["V=>"], buf.returns)


def test_quantities_from_functions_that_are_not_run_must_be_given():
    recorded, final, _ = rollout(ends=False, gae_lambda=0.95)
    with pytest.raises(NotationError, match="comes from line 4"):
        evaluate(GAE_LINES + "O_t * 2 -> W_t\n", recorded, final, want=["W"])
