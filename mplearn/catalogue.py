"""The learning-issue catalogue: what each ``Fixes`` switch is about.

For every issue: the review's claim (in our words; the review is the plan's "Learning Issues
Evaluation Report"), the real mechanism, where it bites, the symptom, the diagnostic that
catches it, its notebook, and its verdict once measured (``None`` until a measurement backs it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

REVIEW = "the plan's review (Learning Issues Evaluation Report)"


@dataclass(frozen=True)
class Issue:
    name: str  # the Fixes field
    title: str
    claim: str  # what the review says ("" for issues beyond the review)
    mechanism: str
    where: str  # where it bites
    symptom: str
    diagnostic: str
    notebook: str
    verdict: str | None = None  # real | conditional: ... | no effect, once measured

    def to_dict(self) -> dict:
        return asdict(self)


ISSUES: tuple[Issue, ...] = (
    Issue(
        "optimizer_binding", "Stale optimizer state",
        claim="Copying weights into a model after its optimizer exists leaves the optimizer "
              "with momentum for the old random weights, so the optimizer must be recreated "
              "after every copy; conditional on create_shared_model copying from a source.",
        mechanism="Adam creates its state lazily at the first step() and load_state_dict "
                  "copies in place into the parameters the optimizer holds, so a weight copy "
                  "before training is harmless. What does break: an optimizer bound to other "
                  "Parameter objects (a train copy that keeps the shared model's optimizer: "
                  "gradients land on the copy, Adam steps parameters whose .grad is None), and "
                  "moments kept while the weights are replaced.",
        where="the learner's train copy (copy path), resume from the shared model",
        symptom="the trainer's weights never change; loss pattern flat; return stays at the "
                "random-policy level",
        diagnostic="checks.optimizer_bound_to(optimizer, model); checks.WeightChange(model); "
                   "checks.optimizer_state_device(optimizer); Monitor: shared weights unchanged "
                   "while the learner updates",
        notebook="02_stale_optimizer_state",
        verdict=("real, for an optimizer bound to other parameters (the copy path): nothing "
                 "learns, final return IQM 9.5 vs 384.6 fixed (5 seeds, 25k steps); no effect for "
                 "the review's own case (recreating the optimizer after a copy changes nothing, "
                 "bit for bit)")),
    Issue(
        "target_sync", "Target network not synced on publish",
        claim="Publishing by zipping the shared model's parameters() with the trainer's copies "
              "only the local network, leaving the shared target stale.",
        mechanism="When the wrapper is an nn.Module holding both networks, parameters() yields "
                  "both, so that zip copies both; it misses buffers (noise, batch-norm "
                  "statistics). Copying qnetwork_local.parameters() alone does leave the shared "
                  "target stale.",
        where="anything that reads the shared target: a learner that restarts from the shared "
              "model, an evaluator, a checkpoint; acting uses only the local network",
        symptom="loss spike after a learner restart; shared target far from the trainer's",
        diagnostic="checks.target_in_sync(published, trainer) after a publish; Monitor: "
                   "shared target unchanged while the target is updated and published",
        notebook="03_target_network_sync",
        verdict=("conditional: only what reads the shared target is hit; a learner resuming from "
                 "it (hard copy every 100 updates) shows a loss peak of 80 to 101 (fixed: 25 to "
                 "34) and mean Q falling to 5-10 (fixed: 60-74) in the 2k steps after the "
                 "restart, but no significant loss of return: IQM 306.3 vs 334.9, difference "
                 "13.9 [-9.5, 37.3]")),
    Issue(
        "train_mode", "Missing train mode",
        claim="train_step must call train() on both networks.",
        mechanism="train()/eval() change only mode-dependent layers (dropout, batch norm, "
                  "noisy layers). A learner left in eval mode trains NoisyLinear layers on "
                  "their means only: sigma gets no gradient and training sees no noise.",
        where="networks with noisy layers, dropout or batch norm; harmless for plain MLPs",
        symptom="sigma parameters frozen; with exploration by noise only, no exploration",
        diagnostic="checks.module_modes(model, 'train'); checks.noisy_sigma_gradients(model) "
                   "after backward(); Monitor: the learner's recorded mode",
        notebook="04_train_mode",
        verdict=("no effect measured with noisy layers and epsilon 0: CartPole IQM 205.7 broken vs"
                 " 133.7 fixed, difference -42.7 [-192.3, 83.7]; DeepSea 8 solved by both; the "
                 "mechanism is real (sigma gets no gradient)")),
    Issue(
        "shared_epsilon", "Epsilon decay and its publication",
        claim="The learner decays epsilon every epsilon_decay_freq steps and publishes it to "
              "the shared model.",
        mechanism="share_memory() shares tensor storages only: a plain attribute set on the "
                  "shared model in the learner never reaches the actor process.",
        where="any value published as a Python attribute across processes",
        symptom="actors explore at the initial epsilon forever; return stays at the "
                "random-policy level while the learner's own epsilon has decayed",
        diagnostic="checks.shared_memory(model) flags plain number attributes; the epsilon "
                   "stored with each transition; Monitor: actor's epsilon vs the learner's",
        notebook="05_epsilon_across_processes",
        verdict=("real: actors explore at epsilon 1.0 for ever; final return IQM 22.4 vs 384.6 "
                 "fixed, difference 362.7 [344.2, 382.2]")),
    Issue(
        "grad_clip", "Gradient clipping",
        claim="Gradients are clipped to norm 1.0 before the optimizer step (marked fixed).",
        mechanism="The quantile Huber loss with kappa = 1 bounds each element's gradient, so "
                  "clipping matters less than for an MSE loss; it can matter with large reward "
                  "scales or high learning rates. The origin had it commented out.",
        where="expected with large rewards or high learning rates; measured on CartPole, the "
              "clip acts on nearly every update and at lr 1e-2 it slowed learning",
        symptom="without it: gradient-norm spikes; with it at a low limit: smaller steps",
        diagnostic="checks.gradient_clipped(model, max_norm) before step(); pre-clip norm "
                   "and fraction clipped in the learner records; Monitor: norm stepped with",
        notebook="06_gradient_clipping",
        verdict=("no effect (no harm measured): at lr 1e-3 difference -36.6 [-81.2, 8.0]; at lr "
                 "1e-2 the unclipped learner did better, IQM 476.1 vs 386.2, difference -79.9 "
                 "[-116.9, -42.9]")),
    Issue(
        "batch_to_device", "Device and dtype of the batch",
        claim="All batch arrays are converted to tensors and moved to the device (marked "
              "fixed).",
        mechanism="torch.from_numpy keeps the array's dtype and device: float64 replay arrays "
                  "meet float32 weights ('mat1 and mat2 must have the same dtype'); a CPU batch "
                  "meets a CUDA model ('Expected all tensors to be on the same device').",
        where="float64 replay storage (replay_obs_dtype='float64'); a learner on cuda or mps",
        symptom="the learner dies; unwatched, the actor goes on acting with the initial policy "
                "and the run looks like 'no learning'",
        diagnostic="checks.batch_matches(batch, model); the System raises the learner's "
                   "error and checks.explain_error / Monitor.saw_error names the issue",
        notebook="07_device_and_dtype",
        verdict=("conditional: with float64 replay storage (or a CUDA learner fed a CPU batch) the"
                 " learner dies at its first update, 5 of 5 runs; with float32 storage on the CPU "
                 "nothing changes")),
    Issue(
        "step_counter", "Training step counter",
        claim="training_step = 0 is initialised and incremented (marked fixed).",
        mechanism="Uninitialised: NameError at first use, the learner dies. Never incremented: "
                  "0 % interval == 0 is always true, so every step publishes and every step "
                  "advances the epsilon schedule.",
        where="the learner's schedules: publish, epsilon decay",
        symptom="publishes and epsilon decays on every update (premature exploitation, slow)",
        diagnostic="Monitor: publishes and epsilon against their schedules; a learner stuck "
                   "with updates owed",
        notebook="08_step_counter",
        verdict=("no effect on return measured for a counter never incremented (epsilon schedule "
                 "10x faster, a publish every update): IQM 415.0 vs 384.6, difference -22.0 "
                 "[-57.6, 6.7]; an uninitialised counter kills the learner")),
    Issue(
        "single_target_update", "Duplicate target network updates",
        claim="(listed among the critical issues) the target is updated twice: inside "
              "train_step and again in the learner loop.",
        mechanism="Two soft updates per period make the effective tau about twice as large; a "
                  "duplicated hard copy is harmless unless it runs every step, which removes "
                  "the target network.",
        where="the learner loop and train_step both updating the target",
        symptom="target updates per optimizer step above the schedule",
        diagnostic="Monitor: target updates against updates / target_update_period",
        notebook="09_duplicate_target_updates",
        verdict=("no effect (no harm measured): a repeated hard copy is the same copy, exactly; a "
                 "repeated soft update (tau 0.005, effectively 0.01) learned faster, IQM 417.1 vs "
                 "308.3, difference -81.2 [-128.3, -34.2]")),
    Issue(
        "initial_state", "Initial model state",
        claim="Unclear whether shared models start from random or copied weights; document it.",
        mechanism="Actors that act before their first sync use their own random init; a train "
                  "copy made before the source weights were copied trains from random weights.",
        where="the first steps of every run; runs initialised from a source model",
        symptom="early transitions from a policy the learner never had",
        diagnostic="Monitor: steps the actor acted with weights it never pulled",
        notebook="10_initial_model_state",
        verdict=("conditional: from scratch no effect (epsilon is 1.0 until the first publish); "
                 "resuming trained weights with epsilon 0.01, acting with the actor's random init "
                 "ruins the run, IQM 69.2 vs 321.3, difference 246.2 [217.7, 269.7]")),
    Issue(
        "replay_by_name", "Replay buffer pickled by value under spawn",
        claim="",
        mechanism="numpy arrays over multiprocessing.shared_memory are pickled by value unless "
                  "the buffer re-attaches by name; the size counter (mp.Value) is shared, so "
                  "the learner samples zeros. Under fork the naive buffer works.",
        where="spawn start method (macOS, Windows, notebooks that use spawn)",
        symptom="tiny loss, first-layer gradient exactly 0, no learning",
        diagnostic="checks.replay_batch(batch): all-zero rows; Monitor: the learner's "
                   "batches are all zeros",
        notebook="11_shared_memory_pitfalls",
        verdict=("real under spawn: the learner samples zeros; final return IQM 18.7 vs 384.6, "
                 "difference 364.8 [342.8, 392.4]")),
    Issue(
        "versioned_publish", "Torn reads during publish",
        claim="",
        mechanism="load_state_dict copies tensor by tensor with no cross-process lock: an "
                  "actor can read a mix of two versions. A seqlock (odd while writing) fixes it.",
        where="async mode only",
        symptom="occasional actions from a network that never existed",
        diagnostic="python -m mplearn check versioned_publish (checksum under concurrent "
                   "publish); Monitor: actor copies never validated against a sequence number",
        notebook="11_shared_memory_pitfalls",
        verdict=("no effect measured on return (async, IQM 391.3 vs 365.1, difference -15.3 "
                 "[-35.4, -0.3]); the torn copies are real: 15 to 32% of syncs during a publish "
                 "stress")),
    Issue(
        "write_before_publish", "Replay race: count before row",
        claim="",
        mechanism="A buffer that bumps its size before writing the row lets the sampler read a "
                  "row that is not written yet.",
        where="async mode, one writer and one sampler",
        symptom="rare zero or stale rows in batches",
        diagnostic="python -m mplearn check write_before_publish (newest counted row read "
                   "under concurrent appends); leaves no trace at rest",
        notebook="11_shared_memory_pitfalls",
        verdict=("no effect measured (async, IQM 331.2 vs 365.1, difference 19.9 [-16.9, 66.8]); "
                 "the race itself is real under a concurrent stress (45 to 65% of reads of the "
                 "newest row)")),
    Issue(
        "truncation_bootstrap", "Terminated vs truncated",
        claim="",
        mechanism="A time-limit truncation is not an absorbing state; treating it as terminal "
                  "removes the bootstrap and biases values (CartPole-v1 truncates at 500).",
        where="environments with time limits",
        symptom="values near the time limit pulled towards the last reward",
        diagnostic="checks.replay_batch(batch); Monitor: time-limit rows stored as terminal",
        notebook="11_shared_memory_pitfalls",
        verdict=("no effect measured at 25k steps: IQM 375.4 vs 364.1, difference -9.5 [-17.0, "
                 "-1.8] (the broken variant slightly ahead)")),
    Issue(
        "single_thread", "Thread oversubscription",
        claim="",
        mechanism="Every process runs torch at its default thread count (one per core), so "
                  "several processes on few cores fight over them.",
        where="several processes on few cores",
        symptom="multiprocess run slower than the sequential one",
        diagnostic="checks.thread_count(processes); Monitor: threads recorded by each worker; "
                   "throughput vs inline",
        notebook="12_performance",
        verdict=("real (speed): on this 2-core machine, processes at torch's default of 2 threads "
                 "did 5x to 67x fewer learner updates per second than at 1 thread (notebook 12; "
                 "timings vary with load)")),
    Issue(
        "worker_seeding", "Identical randomness across workers",
        claim="",
        mechanism="Workers seeded alike draw identical random numbers: identical exploration "
                  "across agents.",
        where="several agents or actors",
        symptom="agents' exploration decisions identical",
        diagnostic="Monitor: the first actions of the agents compared",
        notebook="11_shared_memory_pitfalls",
        verdict=("no effect on return measured (2 agents, IQM 372.7 vs 359.5, difference -23.2 "
                 "[-60.5, 12.4]) although the agents' exploration is identical")),
    Issue(
        "throttle", "Unthrottled learner",
        claim="",
        mechanism="Without an enforced update-to-data ratio the learner trains as fast as it "
                  "can, so the ratio differs between sequential and multiprocess runs and "
                  "confounds every comparison.",
        where="async mode",
        symptom="updates per env step far from the configured ratio; overfitting early data",
        diagnostic="Monitor: updates against what updates_per_step allows at the env steps",
        notebook="12_performance",
        verdict=("conditional (it changes the update-to-data ratio, which confounds comparisons): "
                 "at ratio 0.05 in lockstep the unthrottled learner did 2398 updates instead of "
                 "1200 and learned faster (IQM 101.9 vs 40.6); in async with 2 agents it did no "
                 "extra updates and no difference")),
)


def issue(name: str) -> Issue:
    for i in ISSUES:
        if i.name == name:
            return i
    raise ValueError(f"issue: unknown issue name {name!r}; known: {[i.name for i in ISSUES]}")
