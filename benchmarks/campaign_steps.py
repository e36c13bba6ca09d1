"""The steps of `campaign.py`: the open issues' outstanding benchmark runs, in the order that
buys the most evidence per CPU hour, each with its estimate on this CPU (dense models apart:
``dense`` names them and `campaign.estimate` adds those the cache lacks)."""

from __future__ import annotations

from dataclasses import dataclass

LOOP = "--precision bf16 --group-by-length"
SPARSE_LOOP = "--option precision=bf16 --option group_by_length=true"
MEAN_PRUNER = "benchmarks/results/smp/pruners/smp_pruner_mean"
SMP, PEER = "benchmarks/results/smp", "benchmarks/results/peer-bf16-grouped"
PEER_MEAN = f"{PEER}-peer-mean"
SPARSE = "benchmarks/results/sparse"
AUGMENTED = "--variants sparse-kd --augment 4"


@dataclass(frozen=True)
class Step:
    name: str
    issue: int
    why: str
    minutes: int  # estimate on this CPU
    commands: tuple[str, ...]  # split like a shell; "python" and "prunekit" are this venv's
    results: tuple[str, ...]  # paths committed once it finishes
    after: tuple[str, ...] = ()  # steps that must have finished first
    copy: tuple[str, str] | None = None  # (from, to): a trained artefact into the results
    takes_device: bool = True  # whether its commands accept --device
    dense: tuple[tuple[str, int], ...] = ()  # (task, seed) of the default model's dense cache


def dense_models(needs: str) -> tuple[tuple[str, int], ...]:
    """``"mrpc:0 stsb:0,2"`` as ((mrpc, 0), (stsb, 0), (stsb, 2))."""
    pairs = (item.split(":") for item in needs.split())
    return tuple((task, int(seed)) for task, seeds in pairs for seed in seeds.split(","))


def _smp(task: str, seed: int | str, pruner: str = "", fractions: str = "0.5") -> str:
    chosen = f"--pruner {pruner} " if pruner else ""
    runs = f"--tasks {task} --seeds {seed} --fractions {fractions}"
    return f"python benchmarks/smp.py {chosen}{runs} {LOOP}"


def _peer(task: str, seeds: str = "0", descend: bool = False, mean: bool = False) -> str:
    also = ("--descend " if descend else "") + ("--peer-reduction mean " if mean else "")
    return f"python benchmarks/peer.py --tasks {task} --seeds {seeds} {also}{LOOP}"


def _sparse(task: str, sparsities: str, variants: str = "", seeds: str = "0") -> str:
    """``variants``: e.g. ``--variants sparse-kd --augment 4`` (default: the four variants)."""
    chosen = f"{variants} " if variants else ""
    runs = f"--tasks {task} --seeds {seeds} --sparsities {sparsities}"
    return f"python benchmarks/sparse.py {runs} {chosen}{SPARSE_LOOP}"


def _peer_mean(task: str, label: str, minutes: int) -> Step:
    """Peer's study with the peer loss averaged over the features, on ``task`` seed 0."""
    return Step(
        f"peer-mean-{task}-s0",
        11,
        "peer with its peer loss averaged over the features (an MSE; the squared norm is ~99% of "
        f"the loss on MiniLM, benchmarks/results/peer_beta) on {label} seed 0: 50/70% and "
        "lossless mode, bisecting and descending",
        minutes,
        (_peer(task, descend=True, mean=True),),
        (PEER_MEAN,),
        dense=dense_models(f"{task}:0"),
    )


STEPS = (
    Step(
        "smp-pruner-mean",
        10,
        "a second SMP pruner, meta-trained on mean-pooled pair representations (MiniLM's "
        "pooler is untrained)",
        70,
        # --resume: from the last checkpoint when there is one, else from the start
        (
            "prunekit smp train-pruner --out runs/smp_pruner_mean --steps 1000 --micro-batch 16 "
            "--accumulation 2 --pair-representation mean --quiet --resume",
        ),
        (MEAN_PRUNER,),
        copy=("runs/smp_pruner_mean", MEAN_PRUNER),
    ),
    Step(
        "smp-mean-mrpc-s2",
        10,
        "the mean pruner where the shipped one failed (MRPC seed 2)",
        5,
        (_smp("mrpc", 2, MEAN_PRUNER),),
        (SMP,),
        after=("smp-pruner-mean",),
        dense=dense_models("mrpc:2"),
    ),
    Step(
        "smp-mean-stsb-s1",
        10,
        "the mean pruner on the held-out task (STS-B seed 1)",
        10,
        (_smp("stsb", 1, MEAN_PRUNER),),
        (SMP,),
        after=("smp-pruner-mean",),
        dense=dense_models("stsb:1"),
    ),
    Step(
        "peer-rte-s0",
        11,
        "peer on a second task: 50/70%, the no-peer ablation, lossless at epsilon 0 and 0.5",
        50,
        (_peer("rte"),),
        (PEER,),
        dense=dense_models("rte:0"),
    ),
    Step(
        "sparse-augment-mrpc",
        12,
        "sparse-kd with 4 augmented copies at the cliff (70%, 80%): with vs without augmentation",
        60,
        (_sparse("mrpc", "0.7,0.8", AUGMENTED),),
        (SPARSE,),
        dense=dense_models("mrpc:0"),
    ),
    Step(
        "sparse-augment-mrpc-95",
        12,
        "sparse-kd with 4 augmented copies at 95% (the paper's point), after augmentation "
        "lifted 70% from 82.50 to 84.81 (dense 84.62)",
        40,
        (_sparse("mrpc", "0.95", AUGMENTED),),
        (SPARSE,),
        dense=dense_models("mrpc:0"),
    ),
    Step(
        "peer-descend-mrpc-s0",
        11,
        "peer's lossless mode with search=descend on MRPC, where bisection stopped under a "
        "passing 45% (epsilon 0: 30% and 40% failed, so it removed nothing)",
        45,  # up to 10 students, 0.90 down to 0.45
        (_peer("mrpc", descend=True),),
        (PEER,),
        dense=dense_models("mrpc:0"),
    ),
    Step(
        "smp-rte-s0",
        10,
        "SMP (the shipped pruner), random and HISP per layer, and dense on RTE",
        30,
        (_smp("rte", 0),),
        (SMP,),
        dense=dense_models("rte:0"),
    ),
    Step(
        "smp-mean-rte-s0",
        10,
        "the mean pruner on RTE seed 0 (after smp-rte-s0, whose random, HISP and dense rows it "
        "shares)",
        5,
        (_smp("rte", 0, MEAN_PRUNER),),
        (SMP,),
        after=("smp-pruner-mean", "smp-rte-s0"),
        dense=dense_models("rte:0"),
    ),
    Step(
        "smp-stsb-s0-s2",
        10,
        "STS-B seeds 0 and 2 for both pruners: one seed cannot rank SMP against random there (4 "
        "of 36 heads apart, the two pruners' sets fine-tuned 57 points apart on seed 1)",
        130,  # eight STS-B runs of ~16 min (smp-mean-stsb-s1's)
        (_smp("stsb", "0,2"), _smp("stsb", "0,2", MEAN_PRUNER)),
        (SMP,),
        after=("smp-pruner-mean",),
        dense=dense_models("stsb:0,2"),
    ),
    Step(
        "peer-stsb-s0",
        11,
        "peer on STS-B (regression)",
        140,  # peer-rte-s0's runs at STS-B's ~7x longer fine-tunes
        (_peer("stsb"),),
        (PEER,),
        dense=dense_models("stsb:0"),
    ),
    Step(
        "peer-cola-s0",
        11,
        "peer on CoLA",
        120,
        (_peer("cola"),),
        (PEER,),
        dense=dense_models("cola:0"),
    ),
    Step(
        "smp-cola-s0",
        10,
        "SMP, random, HISP and dense on CoLA",
        40,
        (_smp("cola", 0),),
        (SMP,),
        dense=dense_models("cola:0"),
    ),
    Step(
        "sparse-rte-s0",
        12,
        "the sparsity curve on a second task (RTE, the four variants)",
        130,
        (_sparse("rte", "0.5,0.7,0.9,0.95"),),
        (SPARSE,),
        dense=dense_models("rte:0"),
    ),
    Step(
        "peer-mrpc-s1",
        11,
        "peer's third MRPC seed",
        25,
        (_peer("mrpc", "1"),),
        (PEER,),
        dense=dense_models("mrpc:1"),
    ),
    Step(
        "peer-descend-rte-s0",
        11,
        "peer's lossless mode with search=descend on RTE (bisection: 40% at epsilon 0, 60% at 0.5)",
        40,
        (_peer("rte", descend=True),),
        (PEER,),
        dense=dense_models("rte:0"),
    ),
    Step(
        "peer-descend-cola-s0",
        11,
        "peer's lossless mode with search=descend on CoLA, so the average over tasks uses one "
        "search everywhere (bisection removed nothing at either epsilon: 30%, 40% and 60% failed)",
        30,  # peer-cola-s0 took 16 minutes for 6 fixed-fraction students and 5 searched ones
        (_peer("cola", descend=True),),
        (PEER,),
        after=("peer-cola-s0",),
        dense=dense_models("cola:0"),
    ),
    Step(
        "smp-mean-diagnostics",
        10,
        "the mean pruner on its own objective, against random sets (last: its scores rank heads as "
        "the shipped pruner's do, Spearman 0.94-0.98, `smp/agreement.md`)",
        40,
        (f"python benchmarks/smp_diagnostics.py --pruner {MEAN_PRUNER}",),
        (SMP,),
        after=("smp-pruner-mean",),
        takes_device=False,
    ),
    Step(
        "smp-diagnostics-single",
        10,
        "both pruners on the single-sentence objective (CoLA, SST-2): the mean pruner did not "
        "learn its pair objective (worse than every random set on MRPC and RTE) yet ranks heads "
        "as the shipped one does; did the convolutions both channels share learn the "
        "single-sentence one?",
        10,
        (
            "python benchmarks/smp_diagnostics.py --tasks cola,sst2",
            f"python benchmarks/smp_diagnostics.py --tasks cola,sst2 --pruner {MEAN_PRUNER}",
        ),
        (SMP,),
        after=("smp-mean-diagnostics",),
        takes_device=False,
    ),
    Step(
        "smp-rte-fractions-s0",
        10,
        "SMP, random and HISP per layer at 25% and 75% of heads on RTE seed 0, the issue's other "
        "two fractions (50% is smp-rte-s0's)",
        40,
        (f"python benchmarks/smp.py --tasks rte --seeds 0 --fractions 0.25,0.75 {LOOP}",),
        (SMP,),
        after=("smp-rte-s0",),
        dense=dense_models("rte:0"),
    ),
    Step(
        "sparse-97",
        12,
        "the 97% point of the sparsity curve on MRPC and RTE (the four variants)",
        50,
        (_sparse("mrpc", "0.97"), _sparse("rte", "0.97")),
        (SPARSE,),
        after=("sparse-rte-s0",),
        dense=dense_models("mrpc:0 rte:0"),
    ),
    Step(
        "sparse-block-mrpc-s0",
        12,
        "block movement (8 x 8 blocks, run as BSR where timed faster) against unstructured "
        "movement on MRPC seed 0 at 70% (where unstructured still learns) and 90% (past the "
        "CSR break-even): what whole blocks cost in accuracy and buy in speed",
        40,
        (_sparse("mrpc", "0.7,0.9", "--variants movement,movement+block8"),),
        (SPARSE,),
        dense=dense_models("mrpc:0"),
    ),
    Step(
        "smp-sst2-s0",
        10,
        "SMP and random at 50% on SST-2 seed 0, the fifth task (20,000 seeded train examples, "
        "the in-run dense model alike, as smp.py's --train-cap offers); without HISP, whose "
        "importance needs the full-recipe dense model",
        30,
        (
            "python benchmarks/smp.py --tasks sst2 --seeds 0 --fractions 0.5 "
            f"--methods smp,random --train-cap sst2=20000 {LOOP}",
        ),
        (SMP,),
    ),
    Step(
        "smp-sst2-s1-s2",
        10,
        "SMP and random at 50% on SST-2 seeds 1 and 2 (capped as seed 0), so the fifth task has "
        "three seeds: its seed-0 fine-tunes took 4 minutes each",
        30,
        (
            "python benchmarks/smp.py --tasks sst2 --seeds 1,2 --fractions 0.5 "
            f"--methods smp,random --train-cap sst2=20000 {LOOP}",
        ),
        (SMP,),
        after=("smp-sst2-s0",),
    ),
    Step(
        "smp-mrpc-s1",
        10,
        "SMP, random, HISP and dense at 50% on MRPC seed 1: a second seed where seed 0 put SMP "
        "under random",
        35,
        (_smp("mrpc", 1),),
        (SMP,),
        dense=dense_models("mrpc:1"),
    ),
    Step(
        "smp-rte-s2",
        10,
        "SMP, random, HISP and dense at 50% on RTE seed 2: RTE's third seed at the issue's "
        "main fraction",
        15,
        (_smp("rte", 2),),
        (SMP,),
        dense=dense_models("rte:2"),
    ),
    Step(
        "smp-cola-s1",
        10,
        "SMP, random, HISP and dense at 50% on CoLA seed 1",
        25,
        (_smp("cola", 1),),
        (SMP,),
        dense=dense_models("cola:1"),
    ),
    Step(
        "smp-cola-s2",
        10,
        "SMP, random, HISP and dense at 50% on CoLA seed 2: with it, 50% has three seeds on "
        "all five tasks",
        25,
        (_smp("cola", 2),),
        (SMP,),
        after=("smp-cola-s1",),
        dense=dense_models("cola:2"),
    ),
    Step(
        "smp-mrpc-s0-bf16",
        10,
        "SMP, random, HISP and dense at 50% on MRPC seed 0 in the loop every later row uses "
        "(bf16, length-grouped): seed 0's rows were fp32, so the bf16 rows had two seeds",
        10,
        (_smp("mrpc", 0),),
        (SMP,),
        dense=dense_models("mrpc:0"),
    ),
    Step(
        "smp-rte-s1",
        10,
        "SMP, random, HISP and dense at 50% on RTE seed 1: a second seed where seed 0 put SMP "
        "over random",
        35,
        (_smp("rte", 1),),
        (SMP,),
        dense=dense_models("rte:1"),
    ),
    Step(
        "smp-fractions-mrpc-s0",
        10,
        "SMP, random and HISP per layer at 25% and 75% of heads on MRPC seed 0: the issue's "
        "other two fractions on a second task (RTE's are smp-rte-fractions-s0)",
        12,
        (_smp("mrpc", 0, fractions="0.25,0.75"),),
        (SMP,),
        after=("smp-mrpc-s0-bf16",),
        dense=dense_models("mrpc:0"),
    ),
    Step(
        "smp-fractions-stsb-s0",
        10,
        "SMP, random and HISP per layer at 25% and 75% on STS-B seed 0, the held-out task, "
        "where 50% split the pruners most",
        20,
        (_smp("stsb", 0, fractions="0.25,0.75"),),
        (SMP,),
        dense=dense_models("stsb:0"),
    ),
    Step(
        "smp-fractions-cola-s0",
        10,
        "SMP, random and HISP per layer at 25% and 75% on CoLA seed 0, the single-sentence channel",
        20,
        (_smp("cola", 0, fractions="0.25,0.75"),),
        (SMP,),
        dense=dense_models("cola:0"),
    ),
    Step(
        "smp-fractions-rte-s1-s2",
        10,
        "SMP, random and HISP per layer at 25% and 75% on RTE seeds 1 and 2: the other two "
        "fractions get three seeds on one task (seed 0's are smp-rte-fractions-s0)",
        50,
        (_smp("rte", "1,2", fractions="0.25,0.75"),),
        (SMP,),
        after=("smp-rte-fractions-s0",),
        dense=dense_models("rte:1,2"),
    ),
    Step(
        "smp-fractions-mrpc-s1-s2",
        10,
        "SMP, random and HISP per layer at 25% and 75% on MRPC seeds 1 and 2, a second task "
        "with three seeds at every fraction",
        25,
        (_smp("mrpc", "1,2", fractions="0.25,0.75"),),
        (SMP,),
        after=("smp-fractions-mrpc-s0",),
        dense=dense_models("mrpc:1,2"),
    ),
    Step(
        "smp-fractions-sst2-s0",
        10,
        "SMP and random per layer at 25% and 75% on SST-2 seed 0 (capped at 20,000 train "
        "examples as its 50% rows, without HISP)",
        20,
        (
            "python benchmarks/smp.py --tasks sst2 --seeds 0 --fractions 0.25,0.75 "
            f"--methods smp,random --train-cap sst2=20000 {LOOP}",
        ),
        (SMP,),
        after=("smp-sst2-s0",),
    ),
    Step(
        "smp-fractions-cola-s1-s2",
        10,
        "SMP, random and HISP per layer at 25% and 75% on CoLA seeds 1 and 2: the single-sentence "
        "channel gets three seeds at every fraction",
        40,
        (_smp("cola", "1,2", fractions="0.25,0.75"),),
        (SMP,),
        after=("smp-fractions-cola-s0",),
        dense=dense_models("cola:1,2"),
    ),
    Step(
        "smp-fractions-stsb-s1-s2",
        10,
        "SMP, random and HISP per layer at 25% and 75% on STS-B seeds 1 and 2: the held-out task "
        "gets three seeds at every fraction (seed 0: all three at dense at 25%, SMP and random "
        "collapsed at 75%)",
        60,
        (_smp("stsb", "1,2", fractions="0.25,0.75"),),
        (SMP,),
        after=("smp-fractions-stsb-s0",),
        dense=dense_models("stsb:1,2"),
    ),
    Step(
        "smp-fractions-sst2-s1-s2",
        10,
        "SMP and random per layer at 25% and 75% on SST-2 seeds 1 and 2 (capped at 20,000 train "
        "examples as seed 0's, without HISP): with them every task has three seeds at 25/75%",
        40,
        (
            "python benchmarks/smp.py --tasks sst2 --seeds 1,2 --fractions 0.25,0.75 "
            f"--methods smp,random --train-cap sst2=20000 {LOOP}",
        ),
        (SMP,),
        after=("smp-fractions-sst2-s0",),
    ),
    Step(
        "smp-hisp-sst2",
        10,
        "HISP per layer at 25/50/75% on SST-2 seeds 0-2 (capped at 20,000 train examples as "
        "SST-2's SMP and random rows), importance from the in-run dense model of each seed (the "
        "same cap, the model those rows' delta is against; the full-recipe SST-2 models would "
        "cost ~65 min a seed): the reference every other task's SMP rows have beside them",
        60,
        (
            "python benchmarks/smp.py --tasks sst2 --seeds 0,1,2 --fractions 0.25,0.5,0.75 "
            f"--methods hisp --train-cap sst2=20000 {LOOP}",
        ),
        (SMP,),
        after=("smp-fractions-sst2-s1-s2",),
    ),
    *(
        _peer_mean(task, label, minutes)
        for task, label, minutes in (
            ("cola", "COLA", 45),
            ("stsb", "STS-B", 40),
            ("mrpc", "MRPC", 25),
            ("rte", "RTE", 20),
        )
    ),
    Step(
        "peer-lossless-cola-s1",
        11,
        "peer on COLA seed 1: 50/70% (a second seed) and lossless mode, bisecting and "
        "descending, with a teacher that did not win the recipe sweep on the validation split "
        "lossless mode judges on (seed 0's did: every seed-0 student fell under it)",
        25,
        (_peer("cola", "1", descend=True) + " --lossless-seeds 1",),
        (PEER,),
        dense=dense_models("cola:1"),
    ),
    Step(
        "peer-lossless-rte-s1",
        11,
        "peer on RTE seed 1: 50/70% (a second seed) and lossless mode, bisecting and descending, "
        "with a teacher that did not win the recipe sweep on the validation split (MRPC seed 1 "
        "cannot: its committed rows came from another dense model)",
        15,
        (_peer("rte", "1", descend=True) + " --lossless-seeds 1",),
        (PEER,),
        dense=dense_models("rte:1"),
    ),
    Step(
        "peer-rte-s2",
        11,
        "peer, HISP + KD and peer without its peer loss at 50/70% on RTE seed 2: RTE's third "
        "seed at the fixed fractions",
        15,
        (_peer("rte", "2"),),
        (PEER,),
        dense=dense_models("rte:2"),
    ),
    Step(
        "peer-cola-s2",
        11,
        "the same on CoLA seed 2: CoLA's third seed at the fixed fractions",
        30,
        (_peer("cola", "2"),),
        (PEER,),
        dense=dense_models("cola:2"),
    ),
    Step(
        "peer-stsb-s1-s2",
        11,
        "the same on STS-B seeds 1 and 2: STS-B's second and third seeds at the fixed fractions",
        60,
        (_peer("stsb", "1,2"),),
        (PEER,),
        dense=dense_models("stsb:1,2"),
    ),
    Step(
        "peer-sst2-s0",
        11,
        "peer on SST-2 seed 0 (recovery on a seeded 10,000-example subset per epoch, as the "
        "head comparison's; the teacher fine-tuned on a seeded 20,000-example subset, as SST-2's "
        "SMP rows, ~20 min instead of the full recipe's ~65): 50/70% and lossless mode, "
        "bisecting and descending: the fifth task of the issue, never run",
        140,
        (_peer("sst2", "0", descend=True) + " --dense-train-cap sst2=20000",),
        (PEER,),
    ),
    Step(
        "peer-sst2-s1-s2",
        11,
        "peer, HISP + KD and peer without its peer loss at 50/70% on SST-2 seeds 1 and 2 "
        "(teachers on the seeded 20,000-example subset, as seed 0's): SST-2's second and third "
        "seeds at the fixed fractions",
        60,
        (_peer("sst2", "1,2") + " --dense-train-cap sst2=20000",),
        (PEER,),
    ),
    Step(
        "sparse-mrpc-s1-s2",
        12,
        "the four variants at 50/70/90/95% on MRPC seeds 1 and 2: the sparsity curve's first "
        "task gets three seeds",
        170,
        (_sparse("mrpc", "0.5,0.7,0.9,0.95", seeds="1,2"),),
        (SPARSE,),
        dense=dense_models("mrpc:1,2"),
    ),
    Step(
        "sparse-mrpc-s0-bf16",
        12,
        "magnitude, magnitude+KD and movement at 50/70/90/95% on MRPC seed 0 in the loop of "
        "every later sparse row (bf16, length-grouped; seed 0's were fp32 or missing), so MRPC "
        "has three seeds of all four variants in one loop (sparse-kd's seed-0 rows are there)",
        60,
        (_sparse("mrpc", "0.5,0.7,0.9,0.95", "--variants magnitude,magnitude+kd,movement"),),
        (SPARSE,),
        dense=dense_models("mrpc:0"),
    ),
    Step(
        "sparse-mrpc-80",
        12,
        "the four variants at 80% on MRPC seeds 0-2 (sparse-kd's seed 0 is there): the one point "
        "of the issue's sparsity curve MRPC had for sparse-kd alone, between 70% (where every "
        "variant still learns) and 90% (where each gives the constant answer)",
        75,
        (_sparse("mrpc", "0.8", seeds="0,1,2"),),
        (SPARSE,),
        dense=dense_models("mrpc:0,1,2"),
    ),
    Step(
        "sparse-retime-mrpc",
        12,
        "MRPC's seed-0 sparse models on this machine timed again, alone: rows whose timing "
        "`prunekit bench` flagged as disturbed (tests ran beside them) get a quiet timing",
        10,
        # its --device is the training's: --retime times on this CPU whatever it is given
        ("python benchmarks/sparse.py --retime --tasks mrpc",),
        (SPARSE,),
        after=("sparse-mrpc-80",),
    ),
    Step(
        "sparse-mrpc-97-s1-s2",
        12,
        "the four variants at 97% on MRPC seeds 1 and 2: with sparse-mrpc-80, MRPC has three "
        "seeds of every variant at each of the issue's six sparsities",
        40,
        (_sparse("mrpc", "0.97", seeds="1,2"),),
        (SPARSE,),
        dense=dense_models("mrpc:1,2"),
    ),
    Step(
        "sparse-rte-80-s0",
        12,
        "the four variants at 80% on RTE seed 0: the point of the issue's sparsity curve RTE "
        "lacks (its 70% still learns for sparse-kd alone, its 90% is the constant answer)",
        20,
        (_sparse("rte", "0.8"),),
        (SPARSE,),
        dense=dense_models("rte:0"),
    ),
    Step(
        "sparse-rte-s1",
        12,
        "the four variants at the issue's six sparsities (50/70/80/90/95/97%) on RTE seed 1: "
        "the second task's second seed",
        110,
        (_sparse("rte", "0.5,0.7,0.8,0.9,0.95,0.97", seeds="1"),),
        (SPARSE,),
        dense=dense_models("rte:1"),
    ),
    Step(
        "sparse-rte-s2",
        12,
        "the same on RTE seed 2: with sparse-rte-s1, RTE has three seeds of every variant and "
        "sparsity, as MRPC",
        110,
        (_sparse("rte", "0.5,0.7,0.8,0.9,0.95,0.97", seeds="2"),),
        (SPARSE,),
        dense=dense_models("rte:2"),
    ),
)
