"""Recurrent DQN: n-step double-Q targets, burn-in, stored states, every core, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlmem.agents import DQN
from rlmem.agents.dqn import n_step_targets, rescale, unrescale
from rlmem.cores import CORES, core_options
from rlmem.envs import make_batched
from rlmem.policy import RecurrentQNetwork, tree_map
from rlmem.policy.encoders import UnsupportedSpaceError


def make_agent(env_name="t-maze", core="gru", n_envs=4, seed=0, env_kw=None, hidden=16, **kw) -> DQN:
    env = make_batched(env_name, n_envs, seed=seed, **(env_kw or {}))
    torch.manual_seed(seed)
    options = {"hidden_size": hidden} if "hidden_size" in core_options(core) else {}
    if core == "ntm":
        options.update(memory_size=8, memory_width=4)
    if core == "tmm":
        options.update(slots=4)
    net = RecurrentQNetwork(env.single_observation_space, env.single_action_space, core, options, embed_size=hidden)
    defaults = dict(buffer_size=2000, learning_starts=64, batch_size=8, seq_len=8, overlap=4, burn_in=2,
                    target_update_interval=64, seed=seed)
    return DQN(env, net, **{**defaults, **kw})


def test_n_step_targets_stop_at_termination_and_bootstrap_a_truncation_from_its_final_row():
    gamma, n = 0.5, 3
    reward = torch.tensor([1.0, 2, 3, 4, 5, 0, 7]).unsqueeze(1)
    terminated = torch.tensor([0, 0, 1, 0, 0, 0, 0], dtype=torch.bool).unsqueeze(1)
    truncated = torch.tensor([0, 0, 0, 0, 1, 0, 0], dtype=torch.bool).unsqueeze(1)
    step = torch.tensor([1, 1, 1, 1, 1, 0, 1], dtype=torch.bool).unsqueeze(1)  # row 5: final observation
    bootstrap = torch.tensor([10.0, 20, 30, 40, 50, 60, 70]).reshape(7, 1, 1)
    target, valid = n_step_targets(reward, terminated, truncated, step, bootstrap, gamma, n)
    want = [1 + 0.5 * 2 + 0.25 * 3,      # three rewards, then the termination: no bootstrap
            2 + 0.5 * 3,                 # two rewards up to the termination
            3.0,
            4 + 0.5 * 5 + 0.25 * 60,     # truncated after two rewards: bootstrap from the final row
            5 + 0.5 * 60]
    assert valid[:, 0].tolist() == [True, True, True, True, True, False, False]  # final row; window past the end
    assert torch.allclose(target[:5, 0, 0], torch.tensor(want))
    # no episode end: n rewards and gamma^n times the value n rows on, while that row is inside
    reward, none = torch.arange(1.0, 6.0).unsqueeze(1), torch.zeros(5, 1, dtype=torch.bool)
    target, valid = n_step_targets(reward, none, none, ~none, torch.full((5, 1, 1), 8.0), 0.5, 2)
    assert valid[:, 0].tolist() == [True, True, True, False, False]
    assert torch.allclose(target[:3, 0, 0], torch.tensor([1 + 1.0 + 2.0, 2 + 1.5 + 2.0, 3 + 2.0 + 2.0]))


def test_value_rescaling_is_inverted():
    x = torch.linspace(-500, 500, 101, dtype=torch.float64)
    assert torch.allclose(unrescale(rescale(x)), x, rtol=1e-9, atol=1e-9)


def test_burn_in_rows_get_no_gradient_and_no_loss():
    agent = make_agent("stateless-cartpole", burn_in=3)
    agent.learn(256)
    batch, _, _ = agent.buffer.sample(4, agent.generator)
    batch["obs"] = batch["obs"].clone().requires_grad_(True)
    q, _ = agent._run(agent.policy, batch, grad=True)
    assert q.shape[0] == agent.buffer.seq_len - 3
    q.sum().backward()
    grad = batch["obs"].grad
    assert torch.count_nonzero(grad[:3]) == 0 and torch.count_nonzero(grad[3:]) > 0


def test_optimizer_eps_sets_the_size_of_adams_first_step():
    """Adam's first step is ``lr * g / (|g| + eps)``: about ``lr`` with a small eps, far less with an eps
    above the gradients; a resumed agent takes the eps it is asked for, not the saved one."""
    lr = 1e-3

    def first_step(eps: float) -> torch.Tensor:
        agent = make_agent("memory-copy", "ntm", env_kw={"length": 2, "bits": 3}, learning_rate=lr,
                           optimizer_eps=eps)
        assert agent.optimizer.param_groups[0]["eps"] == eps
        agent.collect(16)
        params = list(agent.policy.torso.core.parameters())
        before = torch.cat([p.detach().flatten() for p in params])
        agent.train_step()
        return ((torch.cat([p.detach().flatten() for p in params]) - before).abs() / lr).median()

    assert first_step(1e-8) >= 0.5
    assert first_step(1.0) <= 0.05
    saved = make_agent(optimizer_eps=1e-5).state_dict()
    resumed = make_agent(optimizer_eps=1e-8)
    resumed.load_state_dict(saved)
    assert resumed.optimizer.param_groups[0]["eps"] == 1e-8


def test_stored_states_are_the_states_the_core_acted_with():
    # greedy acting (epsilon 0, no learning): re-running the network over a stored sequence from its
    # stored state reproduces every action taken, so the state it starts from is the acting state
    agent = make_agent("repeat-previous", env_kw={"length": 12, "k": 2}, exploration_initial_eps=0.0,
                       exploration_final_eps=0.0, learning_starts=10**9)
    agent.learn(4 * 60)
    batch, _, _ = agent.buffer.sample(16, agent.generator)
    agent.burn_in = 0
    with torch.no_grad():
        q, _ = agent._run(agent.policy, batch, grad=False)
    greedy = agent.policy.q_head.to_action(agent.policy.q_head.greedy(q))
    step = ~batch["final"]
    assert torch.equal(greedy[step], batch["action"][step])


def collect_seeing_states(agent: DQN, vector_steps: int) -> list[dict[str, torch.Tensor]]:
    """Collect ``vector_steps`` steps; the core state the network was given at each, ``{k: [B, ...]}``."""
    seen = []
    forward = agent.policy.forward

    def logging_forward(obs, state, starts, *args, **kw):
        seen.append({k: v.clone() for k, v in state.items()})
        return forward(obs, state, starts, *args, **kw)

    agent.policy.forward = logging_forward
    agent.collect(vector_steps)
    agent.policy.forward = forward
    return seen


@pytest.mark.parametrize("core", ["gru", "tmm"])
def test_each_sequence_stores_exactly_the_core_state_acting_used(core):
    """The state kept with a sequence (tmm: with every row) is, bit for bit, the state the network
    was given when it acted on that row."""
    agent = make_agent("repeat-previous", core, env_kw={"length": 40, "k": 2}, learning_starts=10**9)
    seen = collect_seeing_states(agent, 30)  # no episode ends (length 40): sequences start every 4 rows
    buf, shift = agent.buffer, agent.buffer.seq_len - agent.buffer.overlap
    assert buf.filled == 4 * 6
    for s in range(buf.filled):
        env, t0 = s % 4, (s // 4) * shift
        for k, stored in buf.storage["state"].items():
            if agent.per_row_state:
                for j in range(buf.seq_len):
                    assert torch.equal(stored[s, j], seen[t0 + j][k][env]), (k, s, j)
            else:
                assert torch.equal(stored[s], seen[t0][k][env]), (k, s)


@pytest.mark.parametrize("core", sorted(CORES))
def test_one_update_for_every_core_with_branched_multibinary_actions(core):
    agent = make_agent("memory-copy", core, env_kw={"length": 2, "bits": 3}, learning_starts=32, prioritized=True,
                       train_freq=16)
    before = [p.detach().clone() for p in agent.policy.parameters()]
    agent.learn(1100)
    assert agent.n_updates > 0
    changed = any(not torch.equal(a, p) for a, p in zip(before, agent.policy.parameters()))
    assert changed
    actions, _ = agent.policy.predict(agent.env.reset(seed=1)[0])
    assert actions.shape == (4, 3) and set(np.unique(actions)) <= {0, 1}


def test_a_dueling_head_shares_one_state_value_across_branches():
    from gymnasium import spaces

    torch.manual_seed(0)
    net = RecurrentQNetwork(spaces.MultiBinary(4), spaces.MultiDiscrete([3, 2, 5]), "gru", {"hidden_size": 8},
                            embed_size=8, dueling=True)
    feats = torch.randn(5, 7, 8)
    q, value = net.q_head(feats), net.q_head.value(feats)
    for part in net.q_head.split(q):                   # every branch's mean over its actions is V(s)
        torch.testing.assert_close(part.mean(-1, keepdim=True), value, rtol=0, atol=1e-6)
    # the advantages are the linear map's outputs, each branch centred: differences between actions stay
    adv = net.q_head.split(net.q_head.linear(feats))
    for part, a in zip(net.q_head.split(q), adv):
        torch.testing.assert_close(part - part[..., :1], a - a[..., :1], rtol=0, atol=1e-6)
    assert net.init_args["dueling"] is True
    assert RecurrentQNetwork(spaces.MultiBinary(4), spaces.Discrete(3), "gru", {"hidden_size": 8}).q_head.value is None


def test_rows_of_a_bptt_free_core_are_each_run_from_their_own_stored_state():
    agent = make_agent("memory-copy", "tmm", env_kw={"length": 2, "bits": 3}, learning_starts=32)
    agent.learn(300)
    batch, _, _ = agent.buffer.sample(3, agent.generator)
    with torch.no_grad():
        q, _ = agent._run(agent.policy, batch, grad=False)                      # [L, N, A]
        L, N = q.shape[:2]
        for l, n in [(0, 0), (1, 2), (L - 1, 1), (L // 2, 0)]:
            state = {k: v[l, n:n + 1] for k, v in batch["state"].items()}
            one = agent.policy(batch["obs"][l:l + 1, n:n + 1], state, batch["starts"][l:l + 1, n:n + 1]).q
            torch.testing.assert_close(q[l, n], one[0, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("core", ["counts", "tape"])
def test_rows_rebuilt_from_a_sequence_first_state_are_the_states_acting_used(core):
    """A core whose state follows from its inputs keeps one state per sequence; the states rebuilt
    from it are, bit for bit, those the network was given when it acted on each row."""
    agent = make_agent("repeat-previous", core, env_kw={"length": 40, "k": 2}, learning_starts=10**9)
    assert agent.per_row_state and agent.rebuild_rows and not agent.buffer.per_row_state
    seen = collect_seeing_states(agent, 30)
    buf, shift = agent.buffer, agent.buffer.seq_len - agent.buffer.overlap
    slots = torch.arange(buf.filled)
    batch = {key: ({k: v[slots] for k, v in field.items()} if key == "state"
                   else tree_map(lambda b: b[slots].transpose(0, 1), field)) for key, field in buf.storage.items()}
    rows = agent.row_states(batch)
    for s in range(buf.filled):
        env, t0 = s % 4, (s // 4) * shift
        for k, rebuilt in rows.items():
            for j in range(buf.seq_len):
                assert torch.equal(rebuilt[j, s], seen[t0 + j][k][env]), (k, s, j)


@pytest.mark.parametrize("core", ["counts", "tape"])
def test_rebuilding_rows_trains_exactly_as_storing_them(core, monkeypatch):
    """Episodes end inside sequences (length 5): the parameters after training from rebuilt
    row states equal, bit for bit, those from states stored with every row."""
    def trained(rebuild: bool):
        with monkeypatch.context() as m:
            m.setattr(CORES[core], "state_from_inputs", rebuild)
            agent = make_agent("memory-copy", core, env_kw={"length": 2, "bits": 3}, learning_starts=32,
                               train_freq=4, prioritized=True)
        assert agent.rebuild_rows is rebuild and agent.buffer.per_row_state is not rebuild
        agent.learn(600)
        assert agent.n_updates > 10
        return agent

    a, b = trained(True), trained(False)
    for (name, p), q in zip(a.policy.named_parameters(), b.policy.parameters()):
        assert torch.equal(p, q), name
    row = lambda buf: sum(v[0].numel() * v.element_size() for v in buf.storage["state"].values())  # noqa: E731
    assert row(a.buffer) * a.buffer.seq_len == row(b.buffer)


def test_a_box_action_space_is_refused_with_its_name():
    from gymnasium import spaces

    with pytest.raises(UnsupportedSpaceError, match="DQN cannot act in action space Box"):
        RecurrentQNetwork(spaces.Discrete(3), spaces.Box(-1, 1, (2,)))


@pytest.mark.slow
def test_dqn_with_memory_solves_a_short_t_maze_and_without_memory_does_not():
    def train(core: str) -> float:
        agent = make_agent("t-maze", core, n_envs=16, env_kw={"corridor": 3}, hidden=32, learning_starts=500,
                           learning_rate=1e-3, exploration_fraction=0.2, train_freq=2, gradient_steps=1,
                           target_update_interval=500, seed=1)
        agent.learn(10_000)
        from rlmem.agents import evaluate_policy

        return evaluate_policy(agent.policy, make_batched("t-maze", 16, seed=5, corridor=3), 64)["return_mean"]

    assert train("gru") >= 0.9
    assert train("mlp") <= 0.5


def test_the_cli_path_trains_saves_and_reloads_a_q_network(tmp_path):
    from rlmem.checkpoint import load_policy
    from rlmem.train import train

    summary = train(["agent=dqn", "core=lstm", "env=repeat-previous", "env.n_envs=8", "total_steps=1500",
                     "agent.learning_starts=200", "agent.seq_len=8", "agent.overlap=4", "agent.burn_in=2",
                     "agent.train_freq=4", "core.hidden_size=16", "policy.embed_size=16", "eval_episodes=4",
                     "agent.dueling=true", "progress=false"], run_dir=tmp_path)
    # iterations of 1,024 env steps (32 rounds of 4 x 8), the last one cut at the budget in whole rounds
    assert summary["agent"] == "dqn" and summary["env_steps"] == 1504 and summary["eval_episodes"] == 4
    policy = load_policy(tmp_path)
    assert isinstance(policy, RecurrentQNetwork)
    assert policy.init_args["dueling"] and policy.q_head.value is not None   # a network option, rebuilt
    rows = (tmp_path / "progress.csv").read_text().splitlines()
    for column in ("td_loss", "q_mean", "epsilon", "buffer_fill"):
        assert column in rows[0].split(",")


def test_without_stored_state_sequences_start_from_the_initial_state():
    agent = make_agent("repeat-previous", burn_in=0, stored_state=False)
    agent.learn(256)
    batch, _, _ = agent.buffer.sample(4, agent.generator)
    with torch.no_grad():
        q, _ = agent._run(agent.policy, batch, grad=False)
        want = agent.policy(batch["obs"], agent.policy.initial_state(4), batch["starts"]).q
        stored = agent.policy(batch["obs"], batch["state"], batch["starts"]).q
    assert torch.equal(q, want) and not torch.equal(q, stored)
