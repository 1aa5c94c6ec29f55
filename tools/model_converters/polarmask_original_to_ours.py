"""Convert an original PolarMask checkpoint (xieenze/PolarMask) to this package's format.

Usage:
    python tools/model_converters/polarmask_original_to_ours.py IN.pth OUT.pth [--convention C]

Legacy checkpoints (the released ones, ``bbox_head.fcos_*`` keys) get their predictors renamed
to ``polar_*`` and their ray channels rolled to the current angle convention; HEAD-era
checkpoints (``polar_*``) are copied. Deformable-convolution checkpoints keep their
``conv2_offset`` and ``conv_offset_mask`` keys (load them with a ``*_dcn2`` config). Every input
key that was not mapped is listed.
"""

from __future__ import annotations

import argparse
import sys

from polarmask.models.detectors.original_checkpoint import (
    SOURCE_CONVENTIONS,
    convert_original_checkpoint,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='original checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint (.pth)')
    parser.add_argument(
        '--convention',
        choices=SOURCE_CONVENTIONS,
        default='auto',
        help='angle convention of the input rays: auto = legacy for fcos_* keys, else current. '
        '"current" on a legacy checkpoint renames without rolling; decode that with '
        'model.bbox_head.angle_convention=legacy',
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    num_converted, unmapped, convention = convert_original_checkpoint(
        args.src, args.dst, args.convention
    )
    print(f'wrote {num_converted} keys to {args.dst} (source angle convention: {convention})')
    if unmapped:
        print(f'{len(unmapped)} keys were not mapped and were dropped:')
        for key in unmapped:
            print(f'  {key}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
