"""User-style training scripts, written the way people write them (not the way mplearn does),
each with planted bugs and a correct version, to keep ``mplearn.diagnose`` honest.

Every script module has ``BUGS`` (variant name -> the catalogue issue it plants, or
``not_in_catalogue`` for an error the kit must not pin on an issue) and ``main(bug=None)``, which
runs the script with the kit wired in as a user would (``watch``, ``checks``,
``explain_error``) and returns the findings. ``tests/test_diagnose_corpus.py`` asserts: each bug
named by its issue and nothing else; no finding on any correct version.
"""

SCRIPTS = ("dqn_plain_dict", "dqn_agent_wrapper", "iqn_noisy_tensor", "spawn_actor_epsilon",
           "fork_replay", "dqn_counter_attribute", "dqn_dtype", "iqn_plan_wrapper",
           "dqn_batchnorm_eval", "functional_polyak")
