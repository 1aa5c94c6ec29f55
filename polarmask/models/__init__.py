from . import (  # noqa: F401  (registration)
    backbones,
    data_preprocessors,
    detectors,
    heads,
    losses,
    necks,
    task_modules,
    test_time_augs,
)
