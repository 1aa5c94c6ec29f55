# The demo's small-object variant: many small shapes (8-40 px on a 160x160 image, 6-24 per image,
# often touching or partly hidden), the case of cells, parts or aerial objects. Same model and
# schedule as the demo; generated into data/small_shapes/ the first time this config runs.
_base_ = './polar_shapes_r18.py'

data_root = 'data/small_shapes/'
generator_cfg = dict(
    image_size=(160, 160), object_size=(0.05, 0.25), num_objects=(6, 24), min_area=30
)

# Up to 24 shapes per image, some scored for two classes: keep up to 100 detections.
model = dict(test_cfg=dict(max_per_img=100))

train_dataloader = dict(dataset=dict(data_root=data_root, generator_cfg=generator_cfg))
val_dataloader = dict(dataset=dict(data_root=data_root, generator_cfg=generator_cfg))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
