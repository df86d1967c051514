import dataclasses
import json
import math

import pytest

from mplearn.core.config import Config, ConfigError, shown
from mplearn.core.fixes import Fixes

# --- construction and validation -----------------------------------------------------------


def test_defaults_construct():
    c = Config()
    assert c.n_agents == 1 and c.mode == "async" and c.fixes == Fixes()


def test_replace_returns_a_new_validated_config():
    c = Config()
    d = c.replace(n_agents=3, gamma=0.5)
    assert (d.n_agents, d.gamma) == (3, 0.5)
    assert (c.n_agents, c.gamma) == (1, 0.99)  # frozen: the original is untouched
    with pytest.raises(ConfigError, match=r"^n_agents: "):
        c.replace(n_agents=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.n_agents = 2


# (field named by the message, changes). Each case is bad in exactly one way.
INVALID = [
    ("n_agents", dict(n_agents=0)),
    ("n_agents", dict(n_agents=-1)),
    ("total_env_steps", dict(total_env_steps=0)),
    ("total_env_steps", dict(total_env_steps=-5, learning_starts=0)),
    ("batch_size", dict(batch_size=0)),
    ("buffer_size", dict(buffer_size=0)),
    ("buffer_size", dict(buffer_size=-64)),
    ("hidden_dim", dict(hidden_dim=0)),
    ("num_tau_samples", dict(num_tau_samples=0)),
    ("sync_interval", dict(sync_interval=0)),
    ("publish_interval", dict(publish_interval=-1)),
    ("target_update_period", dict(target_update_period=0)),
    ("epsilon_decay_freq", dict(epsilon_decay_freq=0)),
    ("n_step", dict(n_step=0)),
    ("mode", dict(mode="parallel")),
    ("mode", dict(mode="")),
    ("device", dict(device="tpu")),
    ("learner_path", dict(learner_path="inplace")),
    ("n_agents", dict(n_agents="2")),
    ("n_agents", dict(n_agents=2.0)),
    ("n_agents", dict(n_agents=True)),
    ("noisy", dict(noisy="yes")),
    ("noisy", dict(noisy=1)),
    ("mode", dict(mode=1)),
    ("learning_rate", dict(learning_rate="fast")),
    ("gamma", dict(gamma=0.0)),
    ("gamma", dict(gamma=1.5)),
    ("tau", dict(tau=0.0)),
    ("tau", dict(tau=2.0)),
    ("dropout", dict(dropout=1.0)),
    ("dropout", dict(dropout=-0.1)),
    ("epsilon_end", dict(epsilon_start=0.5, epsilon_end=0.6)),
    ("epsilon_start", dict(epsilon_start=1.5)),
    ("epsilon_end", dict(epsilon_end=-0.1)),
    ("batch_size", dict(batch_size=128, buffer_size=64)),
    ("learning_starts", dict(learning_starts=100, total_env_steps=100)),
    ("learning_starts", dict(learning_starts=1000, total_env_steps=500)),
    ("learning_starts", dict(learning_starts=-1)),
    ("seed", dict(seed=-1)),
    ("max_grad_norm", dict(max_grad_norm=0.0)),
    ("max_grad_norm", dict(max_grad_norm=math.nan)),
    ("max_grad_norm", dict(max_grad_norm=-math.inf)),
    ("learning_rate", dict(learning_rate=math.inf)),
    ("kappa", dict(kappa=0.0)),
    ("updates_per_step", dict(updates_per_step=-1.0)),
    ("inject_fault", dict(inject_fault="actor")),
    ("inject_fault", dict(inject_fault="learner@x")),
    ("inject_fault", dict(inject_fault="critic@3")),
    ("inject_fault", dict(inject_fault="learner@3\n")),
    ("fixes", dict(fixes={})),
    ("fixes", dict(fixes=None)),
    # past the overflow-safe bounds: ints of hundreds of digits, 1e308, inf, nan
    ("total_env_steps", dict(total_env_steps=10**400)),
    ("total_env_steps", dict(total_env_steps=2**48 + 1)),
    ("learning_starts", dict(learning_starts=10**400)),
    ("seed", dict(seed=10**5000)),  # past the 4300 digits str() of an int allows
    ("seed", dict(seed=-10**5000)),
    ("n_agents", dict(n_agents=2**63)),
    ("hidden_dim", dict(hidden_dim=2**63)),
    ("buffer_size", dict(buffer_size=10**400)),
    ("max_update_lag", dict(max_update_lag=2**64)),
    ("updates_per_step", dict(updates_per_step=1e308)),  # x steps = inf: floor() overflowed
    ("updates_per_step", dict(updates_per_step=1e300)),  # finite, but the run never ends
    ("updates_per_step", dict(updates_per_step=math.inf)),
    ("updates_per_step", dict(updates_per_step=math.nan)),
    ("updates_per_step", dict(updates_per_step=10**400)),
    ("learning_rate", dict(learning_rate=10**400)),  # isfinite() of it overflowed
    ("kappa", dict(kappa=-10**400)),
    ("max_grad_norm", dict(max_grad_norm=10**400)),
    ("adam_eps", dict(adam_eps=math.nan)),
    ("gamma", dict(gamma=math.nan)),
    ("tau", dict(tau=math.nan)),
    ("dropout", dict(dropout=math.nan)),
    ("dropout", dict(dropout=10**400)),
    ("epsilon_start", dict(epsilon_start=math.nan)),
    ("epsilon_end", dict(epsilon_end=-math.inf)),
    ("inject_fault", dict(inject_fault="actor@" + "9" * 5000)),
]


@pytest.mark.parametrize(("field_name", "changes"), INVALID,
                         ids=[f"{n}-" + ",".join(f"{k}={shown(x)}" for k, x in v.items())
                              for n, v in INVALID])
def test_invalid_value_raises_one_line_error_naming_the_field(field_name, changes):
    with pytest.raises(ConfigError) as info:
        Config(**changes)
    message = str(info.value)
    assert message.startswith(f"{field_name}: "), message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)  # ConfigError is a ValueError
    # replace() validates the same way
    with pytest.raises(ConfigError, match=rf"^{field_name}: "):
        Config().replace(**changes)


@pytest.mark.parametrize("changes", [
    dict(max_grad_norm=math.inf),  # inf: never clip
    dict(gamma=1.0, tau=1.0, dropout=0.0),
    dict(gamma=1),  # an int is a number
    dict(epsilon_start=0.3, epsilon_end=0.3),
    dict(batch_size=64, buffer_size=64),
    dict(learning_starts=0, seed=0),
    dict(learning_starts=99, total_env_steps=100),
    dict(inject_fault="actor@0"),
    dict(inject_fault="learner@12"),
    dict(mode="inline", device="cpu", learner_path="copy"),
    # the overflow bounds' edges: 2**48 env steps, 2**48 updates; sizes up to int64 (what
    # they cost the machine is checked by System, see test_resources.py)
    dict(total_env_steps=2**48, learning_starts=0),
    dict(total_env_steps=2**20, learning_starts=0, updates_per_step=2.0**28),
    dict(hidden_dim=2**63 - 1, seed=2**64 - 1),
])
def test_boundary_values_are_accepted(changes):
    c = Config(**changes)
    for name, value in changes.items():
        assert getattr(c, name) == value


def test_fault_at():
    assert Config(inject_fault="learner@3").fault_at("learner") == 3
    assert Config(inject_fault="learner@3").fault_at("actor") is None
    assert Config(inject_fault="actor@0").fault_at("actor") == 0
    assert Config().fault_at("learner") is None and Config().fault_at("actor") is None


# --- schedules -------------------------------------------------------------------------------


@pytest.mark.parametrize(("updates", "expected"), [
    (0, 1.0),
    (99, 1.0),  # the schedule only advances every 100 updates
    (100, 0.91),  # 1.0 - 0.9 * 100/1000
    (199, 0.91),
    (550, 0.55),  # stepped to 500: 1.0 - 0.9 * 0.5
    (999, 0.19),  # stepped to 900
    (1000, 0.1),
    (5000, 0.1),  # stays at the end value
])
def test_epsilon_at_is_linear_and_stepped(updates, expected):
    c = Config(epsilon_start=1.0, epsilon_end=0.1, epsilon_decay_updates=1000,
               epsilon_decay_freq=100)
    assert c.epsilon_at(updates) == pytest.approx(expected, abs=1e-12)


def test_epsilon_at_freq_one_moves_every_update():
    c = Config(epsilon_start=0.5, epsilon_end=0.0, epsilon_decay_updates=4, epsilon_decay_freq=1)
    assert [c.epsilon_at(u) for u in range(6)] == pytest.approx(
        [0.5, 0.375, 0.25, 0.125, 0.0, 0.0], abs=1e-12)


@pytest.mark.parametrize(("env_steps", "expected"), [
    (0, 0),
    (31, 0),  # learning_starts passed, but fewer env steps than one batch
    (32, 22),  # 32 - 10
    (33, 23),
    (110, 100),
])
def test_updates_owed_ratio_one(env_steps, expected):
    c = Config(updates_per_step=1.0, learning_starts=10, batch_size=32)
    assert c.updates_owed(env_steps) == expected


@pytest.mark.parametrize(("env_steps", "expected"), [
    (0, 0),
    (99, 0),
    (100, 0),
    (103, 0),  # 0.75 floors to 0
    (104, 1),
    (107, 1),
    (108, 2),
    (500, 100),
    (1001, 225),  # 225.25
])
def test_updates_owed_ratio_quarter(env_steps, expected):
    c = Config(updates_per_step=0.25, learning_starts=100, batch_size=16)
    assert c.updates_owed(env_steps) == expected


def test_updates_owed_without_learning_starts_waits_for_a_batch():
    c = Config(updates_per_step=1.0, learning_starts=0, batch_size=64)
    assert c.updates_owed(63) == 0
    assert c.updates_owed(64) == 64


# --- serialisation ---------------------------------------------------------------------------


def _non_default_fixes() -> Fixes:
    names = Fixes.names()
    return Fixes().without(names[0]) if names else Fixes()


def test_to_dict_from_dict_round_trip():
    c = Config(n_agents=2, mode="lockstep", total_env_steps=2000, seed=7, hidden_dim=32,
               dueling=True, noisy=True, dropout=0.1, gamma=0.9, n_step=1, learning_rate=3e-4,
               max_grad_norm=math.inf, batch_size=16, buffer_size=1000, learning_starts=50,
               tau=0.25, epsilon_end=0.2, device="cpu", learner_path="copy",
               inject_fault="actor@5", fixes=_non_default_fixes())
    d = c.to_dict()
    assert isinstance(d["fixes"], dict)
    assert d["n_agents"] == 2 and d["mode"] == "lockstep" and d["max_grad_norm"] == math.inf
    assert Config.from_dict(d) == c
    assert Config.from_dict(json.loads(json.dumps(d))) == c  # what a saved Result holds
    assert Config.from_dict(Config().to_dict()) == Config()


def test_from_dict_does_not_mutate_its_argument():
    d = Config().to_dict()
    before = json.dumps(d, sort_keys=True)
    Config.from_dict(d)
    assert json.dumps(d, sort_keys=True) == before


def test_from_dict_partial_uses_defaults():
    c = Config.from_dict({"n_agents": 4})
    assert c == Config(n_agents=4)


def test_from_dict_unknown_field_raises_naming_it():
    d = Config().to_dict()
    d["bogus_field"] = 1
    with pytest.raises(ConfigError, match=r"^bogus_field: "):
        Config.from_dict(d)


def test_from_dict_validates():
    with pytest.raises(ConfigError, match=r"^gamma: "):
        Config.from_dict({"gamma": 2.0})


@pytest.mark.parametrize(("d", "field_name"), [
    ({"fixes": None}, "fixes"),  # was a TypeError from set(None)
    ({"fixes": ["train_mode"]}, "fixes"),
    ({"fixes": "train_mode"}, "fixes"),
    ({"fixes": {1: True}}, "fixes"),
    ({1: 2}, "1"),  # a key of another type: named, not a TypeError from sorted() or **
    (None, "config"),
    ([("n_agents", 2)], "config"),
])
def test_from_dict_bad_shapes_raise_one_line_naming_the_field(d, field_name):
    with pytest.raises(ConfigError) as info:
        Config.from_dict(d)
    message = str(info.value)
    assert message.startswith(f"{field_name}: ") and "\n" not in message, message


def test_from_dict_takes_a_fixes_object():
    fixes = _non_default_fixes()
    assert Config.from_dict({"fixes": fixes}).fixes == fixes


@pytest.mark.parametrize(("value", "expected"), [
    (5, "5"),
    (2**64, str(2**64)),
    (10**400, "1.00e+400 (a 401-digit integer)"),
    (-10**400, "-1.00e+400 (a 401-digit integer)"),
    (10**5000, "an integer of about 5000 digits"),
    (-(10**5000), "a negative integer of about 5000 digits"),
    ("x" * 500, repr("x" * 500)[:60] + "... (502 characters)"),
], ids=["small", "2**64", "10**400", "-10**400", "10**5000", "-10**5000", "long-str"])
def test_shown_keeps_a_value_short(value, expected):
    assert shown(value) == expected


def test_a_huge_value_is_shown_short_in_the_message():
    with pytest.raises(ConfigError) as info:
        Config(total_env_steps=10**5000)
    assert len(str(info.value)) < 200, str(info.value)


def test_from_dict_unknown_fix_name_raises_config_error():
    with pytest.raises(ConfigError, match=r"^fixes"):
        Config.from_dict({"fixes": {"no_such_issue": True}})


# --- Fixes -----------------------------------------------------------------------------------


def test_fixes_all_and_none():
    assert Fixes.all() == Fixes()
    assert all(getattr(Fixes.all(), n) is True for n in Fixes.names())
    assert all(getattr(Fixes.none(), n) is False for n in Fixes.names())
    assert Fixes.all().broken() == ()
    assert Fixes.none().broken() == Fixes.names()
    assert set(Fixes().to_dict()) == set(Fixes.names())
    assert Fixes.names() == tuple(f.name for f in dataclasses.fields(Fixes))


def test_fixes_without_breaks_only_the_named_issue():
    assert Fixes().without() == Fixes()
    for name in Fixes.names():
        f = Fixes().without(name)
        assert f.broken() == (name,)
        assert getattr(f, name) is False
        assert Fixes().to_dict() == {**f.to_dict(), name: True}


def test_fixes_without_unknown_name_raises_naming_it():
    with pytest.raises(ValueError, match="no_such_issue"):
        Fixes().without("no_such_issue")
    names = Fixes.names()
    with pytest.raises(ValueError, match="also_unknown"):
        Fixes().without(*names, "also_unknown")
