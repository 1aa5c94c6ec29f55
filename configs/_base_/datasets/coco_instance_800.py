# COCO 2017 instances warped to 1333x800 (polar_800_1x,
# docs/original_polarmask.md#configs-and-schedules): the 768 base at another size, 8 workers.
_base_ = './coco_instance_768.py'

img_scale = (1333, 800)
train_pipeline = _base_.train_pipeline
train_pipeline[2].scale = img_scale  # Resize
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = img_scale  # Resize
tta_pipeline = _base_.tta_pipeline
tta_pipeline[1].transforms[0][0].scale = img_scale  # TestTimeAug's Resize

train_dataloader = dict(num_workers=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
