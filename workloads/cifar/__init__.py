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
    target=Target(metric="accuracy", validation=0.9639, direction="max"),
    max_runtime_s=41.0,
    step_hint=1500,
    reference_steps=700,
    eval_every_steps=100,
    device="cpu",
    calibration=(
        "bench calibrate, 2026-11-23 on hw-a5285d9436b7: nadamw searched over 4 points (defaults + "
        "Halton), 800 steps each; best point lr=0.00175, one_minus_beta1=0.0673, beta2=0.996, "
        "eps=1e-08, weight_decay=0.0812, warmup_fraction=0.02; rerun on 5 seeds: best validation "
        "accuracy (and steps to the target) 0.968@700, 0.961(miss), 0.959(miss), 0.964@800, "
        "0.971@700. Target = the 50% quantile, rounded: 0.9639. 3/5 seeds reach it, median 27.3 s; "
        "budget = median / 0.67 = 41.0 s. CV of time-to-target 8.6%, of steps-to-target 7.9%. Full "
        "record: docs/calibration.md."
    ),
    target_setting={
        "optimizer": "nadamw",
        "hyperparameters": {"lr": 0.0017486387539278373, "one_minus_beta1": 0.06733926164, "beta2": 0.9955159689799007, "eps": 1e-08, "weight_decay": 0.08121616522670176, "warmup_fraction": 0.02},
        "steps": 800,
        "steps_to_target": {0: 700, 1: None, 2: None, 3: 800, 4: 700},
        "hardware_id": "hw-a5285d9436b7",  # AMD EPYC, 2 cores, 24 GiB (docs/calibration.md)
    },
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
