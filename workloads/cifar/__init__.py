"""cifar: image classification with a ResNet (AlgoPerf's CIFAR-10 workload).

This module only describes the workload; it imports neither torch nor numpy, so
``bench list`` can read it cheaply. The work is done by
:class:`workloads.cifar.task.CifarTask`, imported when a run starts.
"""

from harness.api import Size, Target, WorkloadInfo

TINY = Size(
    name="tiny",
    description="10-class rendered shapes (32x32 RGB, 10000 train), small ResNet, 2 CPU cores",
    dataset="shapes10 v1: procedurally rendered shapes, 10000 / 1000 / 1000 (generated in memory)",
    model="ResNet-8 for CIFAR: widths 16-32-64, one BasicBlock per stage (78k parameters)",
    batch_size=32,
    target=Target(metric="accuracy", validation=0.96, direction="max"),
    max_runtime_s=60.0,
    step_hint=1500,
    eval_every_steps=100,
    device="cpu",
    calibration=(
        "Set 2026-11-23 on hw-a5285d9436b7 (AMD EPYC, 2 cores, torch 2.13.0 CPU) from the "
        "validation-accuracy curves of the default hyperparameters, seed 0, batch 32, "
        "step_hint 1500, eval every 100 steps (~0.045 s/step): nadamw (baseline) 0.873@300, "
        "0.971@500 steps; adamw 0.849@300, 0.949@600, 0.969@700; lion 0.547@300, 0.856@500, "
        "0.949@800, 0.971@900. Target 0.96 sits where all three still improve; the baseline "
        "reaches it in ~22 s (a third of the budget, not in its first fifth) and lion's "
        "paper defaults in ~32 s, so the 60 s budget leaves the demo a margin. Not yet "
        "calibrated by the multi-seed protocol of issue 4."
    ),
)

FULL = Size(
    name="full",
    description="CIFAR-10, ResNet-18, one GPU (AlgoPerf's cifar workload)",
    dataset="CIFAR-10: 45000 train / 5000 validation (held out of the training set) / 10000 test",
    model="ResNet-18 for CIFAR: 3x3 stem, no max-pool, widths 64-128-256-512, [2, 2, 2, 2] BasicBlocks",
    batch_size=1024,
    target=Target(metric="accuracy", validation=0.85, direction="max", test=0.85),
    max_runtime_s=3600.0,
    step_hint=4883,
    eval_every_s=600.0,
    device="cuda",
    calibration=(
        "AlgoPerf's cifar workload (algorithmic-efficiency, workloads/cifar/workload.py): "
        "validation and test target accuracy 0.85, max_allowed_runtime_sec 3600, "
        "eval_period_time_sec 600, step_hint 4883 = 100 epochs of 45000 at batch 1024 "
        "(AlgoPerf notes no target-setting run was made for it), 45000/5000/10000 split. "
        "Augmentation here is the classic 4-pixel-pad random crop + flip."
    ),
)

WORKLOAD = WorkloadInfo(
    name="cifar",
    description="Image classification: ResNet on CIFAR-10 (full) or rendered shapes (tiny)",
    sizes={"tiny": TINY, "full": FULL},
    norm_sites=("conv",),
    default_norm="batchnorm",
    default_optimizer="nadamw",
    task="workloads.cifar.task:CifarTask",
    prepare="workloads.cifar.data:prepare",
)
