from .display import display_problem, show_or_write
from .draw import (
    draw_boxes,
    draw_det_instances,
    draw_gt_instances,
    draw_points,
    draw_polar_targets,
    draw_polygons,
    draw_rays,
    draw_texts,
    get_palette,
    tag_layout,
)
from .hooks import DetVisualizationHook
from .local_visualizer import PolarVisualizer

__all__ = [
    'DetVisualizationHook',
    'PolarVisualizer',
    'display_problem',
    'draw_boxes',
    'draw_det_instances',
    'draw_gt_instances',
    'draw_points',
    'draw_polar_targets',
    'draw_polygons',
    'draw_rays',
    'draw_texts',
    'get_palette',
    'show_or_write',
    'tag_layout',
]
