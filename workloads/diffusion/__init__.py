"""diffusion: DDPM noise-prediction training of a UNet (Ho et al. 2020).

The metric, ``denoising_loss`` (lower is better), is DDPM's L_simple -- the
mean squared error of the predicted noise -- on a fixed evaluation problem:
held-out images with noise draws and (stratified) timesteps that are the same
for every run; see ``task.py``.

This module only describes the workload; it imports neither torch nor numpy, so
``bench list`` can read it cheaply. The work is done by
:class:`workloads.diffusion.task.DiffusionTask`, imported when a run starts.
"""

from harness.api import Size, Target, WorkloadInfo

TINY = Size(
    name="tiny",
    description="DDPM on 16x16 rendered shapes (10000 train), small UNet, 2 CPU cores",
    dataset="shapes16 v1: the cifar workload's rendered shapes, 2x2-averaged to 16x16, 10000 / 1000 / 250",
    model="DDPM UNet ch 16, ch_mult (1, 2, 2), 1 ResBlock per level, attention at 4x4 (281k parameters); "
    "linear betas, T=1000",
    batch_size=32,
    target=Target(metric="denoising_loss", validation=0.073, direction="min"),
    max_runtime_s=40.0,
    step_hint=400,
    eval_every_steps=50,
    device="cpu",
    calibration=(
        "Provisional, set 2026-11-23 on hw-a5285d9436b7 (AMD EPYC, 2 cores, torch 2.13.0 CPU) from "
        "the validation curves of the baseline's defaults (adamw: lr 2e-3, wd 0.05, 5% warmup + cosine "
        "to step_hint 400), batch 32, eval every 50 steps, 3 seeds, threads=1 (the machine was shared, "
        "load average 9-14, so seconds were not measured quietly). validation/denoising_loss at steps "
        "50..400: seed 0 0.1503 0.1023 0.0861 0.0792 0.0743 0.0720 0.0706 0.0703; seed 1 0.1505 0.1022 "
        "0.0875 0.0799 0.0764 0.0735 0.0720 0.0717; seed 2 0.1536 0.1009 0.0875 0.0792 0.0745 0.0722 "
        "0.0711 0.0708. Median best 0.0708; the target 0.073 is loosened to where every seed has passed "
        "by step 350 (steps to target 300 / 350 / 300: the curve is still falling there, ~1%/50 steps), "
        "so the baseline reaches it reliably. Other defaults, seed 0: nadamw reaches it at step 300 "
        "(0.0729); lion's paper defaults (lr 3e-4) are too slow here: 0.7305@50, 0.2164@200, "
        "0.1512@300, best 0.1426@400, a miss. Budget: the official `bench run --submission adamw "
        "--workload diffusion` (2 threads, load average ~3) reached the target at step 300 (0.0720) "
        "in 25.1 timed s (0.084 s/step; 6 evals 4.4 s, set-up 4.4 s), 63% of the 40 s budget. "
        "Caution: with 2 threads on an oversubscribed CPU this many-small-op UNet slows ~12x "
        "(1.7 s/step at load ~5, against 0.14 s/step with 1 thread; cifar tiny ~3.5x), so time it "
        "on a quiet machine. Re-run "
        "with `bench calibrate --workload diffusion` on a quiet "
        "machine to replace these numbers."
    ),
)

FULL = Size(
    name="full",
    description="DDPM on CIFAR-10 32x32, Ho et al.'s 35.7M-parameter UNet, one GPU",
    dataset="CIFAR-10 images: 45000 train (random flips) / 5000 validation (held out of the training set) / 10000 test",
    model="DDPM UNet ch 128, ch_mult (1, 2, 2, 2), 2 ResBlocks per level, attention at 16x16, dropout 0.1 "
    "(35.7M parameters); linear betas 1e-4..0.02, T=1000",
    batch_size=128,
    target=Target(metric="denoising_loss", validation=0.033, direction="min"),
    max_runtime_s=14400.0,
    step_hint=100_000,
    eval_every_s=600.0,
    device="cuda",
    calibration=(
        "PROVISIONAL, not calibrated: no GPU was available when it was set (2026-11-23). Problem as "
        "Ho et al. 2020 (arXiv:2006.11239, hojonathanho/diffusion scripts/run_cifar.py): their "
        "CIFAR-10 UNet, batch 128, L_simple, T=1000 linear betas, dropout 0.1, random flips; they "
        "train 800k steps with Adam lr 2e-4, 5000 warmup steps, grad clip 1 and EMA 0.9999, and "
        "report no loss values. step_hint 100k (~285 epochs) keeps a run to hours: 37.3 GFLOP per "
        "image per training step (fwd+bwd, counted), 4.8 TFLOP per step. Target 0.033 is read off "
        "public reports of L_simple with that setup: per-batch training loss settling around 0.03-0.04 "
        "(w86763777/pytorch-ddpm issue 1) and fluctuating in 0.015-0.030 later (hojonathanho/diffusion "
        "issue 13); the fixed, stratified validation problem here estimates the same expectation. "
        "Budget 4 h is a guess (~2x step_hint at an assumed ~0.07 s/step). Calibrate with "
        "`bench calibrate --workload diffusion --size full` on a GPU before comparing runs."
    ),
)

WORKLOAD = WorkloadInfo(
    name="diffusion",
    description="Image generation: DDPM noise-prediction UNet on CIFAR-10 (full) or 16x16 shapes (tiny)",
    sizes={"tiny": TINY, "full": FULL},
    norm_sites=("conv",),
    default_norm="groupnorm",
    default_optimizer="adamw",
    task="workloads.diffusion.task:DiffusionTask",
    prepare="workloads.diffusion.data:prepare",
)
