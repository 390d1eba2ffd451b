"""TinyNAS: memory- and energy-constrained architecture search for the board (MCUNet style).

    space.py       the search space (MobileNetV2 stages, elastic kernel/expand/depth) and Arch
    efficiency.py  a subnet's peak SRAM, flash, MACs, latency, energy: our IR + planner, no TF
    spaceopt.py    stage 1: pick (width, resolution) by the MAC distribution of fitting subnets
    supernet.py    the once-for-all supernet: progressive shrinking, in-place distillation
    evolution.py   constrained evolutionary search, and the random-search baseline
    earlybird.py   Early-Bird ticket detection (channel masks from batch-norm scales)
    training.py    training loops, Early-Bird pruning and the compute-saved accounting
    models.py      plain Keras models of an Arch (fine-tuning, pruning, quantization)
    quantize.py    full-int8 quantization with TFLiteConverter; quantize_keras() for `build`
    data.py        datasets: digits, synthetic, image folders, .npz
    search.py      `mcucompile search`, end to end;  train.py  `mcucompile train`

Only space, efficiency, spaceopt, evolution, earlybird and data (without resizing)
work without TensorFlow; the rest import it when first used, never at
`mcucompile build` time.
"""
