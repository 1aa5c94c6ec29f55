# The demo's small-object variant: many small shapes (8-40 px on a 160x160 image, 6-24 per image,
# often touching or partly hidden), the case of cells, parts or aerial objects. The demo's model
# one level finer and twice as wide: P2 and P3 (strides 4 and 8) instead of P3 and P4, fed by the
# backbone's first two stages (its third only fed P4). Generated into data/small_shapes/ the
# first time this config runs. Measured at equal wall time (docs/demo_accuracy.md, section 4):
# P3 and P4 for 15 epochs 0.383 segm AP, trained and tested 1.2x larger for 11 epochs 0.456, P2
# and P3 for 9 epochs 0.464 (AP50 0.830 against 0.682 and 0.748).
_base_ = './polar_shapes_r18.py'

data_root = 'data/small_shapes/'
generator_cfg = dict(
    image_size=(160, 160), object_size=(0.05, 0.25), num_objects=(6, 24), min_area=30
)
# Small shapes gain from more steps and a wider backbone where the demo did not: at equal time
# (seed 0, lr 4e-3), the demo's quarter width for 20 epochs 0.636 and this half width for 16
# epochs 0.649 (segm AP; docs/demo_accuracy.md#5-rasterising-at-the-nearest-pixel). Longer
# still rises, slowly: seed 0, 16 / 24 / 32 epochs 0.653 / 0.662 / 0.668 (section 6 there).
max_epochs = 16

model = dict(
    backbone=dict(base_channels=32, num_stages=2, out_indices=(0, 1)),
    neck=dict(in_channels=[32, 64], start_level=0, num_outs=2),
    # Shapes whose positives lie within 16 px of all their sides (most under ~24 px) learn on P2.
    bbox_head=dict(strides=[4, 8], regress_ranges=((-1, 16), (16, 1e8))),
    # Up to 24 shapes per image, some scored for two classes: keep up to 100 detections.
    test_cfg=dict(max_per_img=100),
)

# Tested 1.2x enlarged, the demo 1.1x: segm AP at test size 192 / 208 / 224 of this config,
# seed 0, one thread: 0.649 / 0.643 / 0.621; the previous config's checkpoints at 160 / 176 /
# 192 / 208: 0.535 / 0.558 / 0.573 / 0.566
# (docs/demo_accuracy.md#5-rasterising-at-the-nearest-pixel).
test_scale = (192, 192)
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = test_scale  # Resize
tta_pipeline = _base_.tta_pipeline
tta_pipeline[1].transforms[0][1].scale = test_scale  # the second size

train_dataloader = dict(dataset=dict(data_root=data_root, generator_cfg=generator_cfg))
val_dataloader = dict(
    dataset=dict(data_root=data_root, generator_cfg=generator_cfg, pipeline=test_pipeline)
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# Twice the demo's learning rate: 10 epochs 0.573 -> 0.583 (seed 0).
optim_wrapper = dict(optimizer=dict(lr=0.004))
param_scheduler = _base_.param_scheduler
param_scheduler[1].end = max_epochs  # the cosine ends with the training
default_hooks = dict(checkpoint=dict(interval=max_epochs))
