# The pieces the original's *_dcn2 configs add to a model
# (docs/original_polarmask.md#deformable-convolutions). Not a model on its own: a DCN leaf lists
# this file after the non-DCN config it extends and applies both pieces:
#     _base_ = ['./polar_768_1x_r50.py', '../../_base_/models/polarmask_dcn.py']
#     model = _base_.dcn_model
#     optim_wrapper = _base_.dcn_optim_wrapper

# The 3x3 conv of every bottleneck in stages 2-4 deformable (DCNv1, offsets from a sibling 3x3
# conv2_offset), and the head's towers modulated deformable convs (DCNv2 with bias, GN, ReLU).
dcn_model = dict(
    backbone=dict(
        dcn=dict(modulated=False, deformable_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True),
    ),
    bbox_head=dict(use_dcn=True),
)

# The original finds norm parameters by name (bn or gn, an optional number, then .weight or
# .bias). Its DCN head names its GroupNorms by position, {tower}.{1,4,7,10}, so their biases get
# the bias lr x2 and no decay there; mmengine finds norms by type and would keep their lr and
# decay. These keys give them the original's options (the GN weights keep base lr and decay).
dcn_optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            f'bbox_head.{tower}.{3 * index + 1}.bias': dict(lr_mult=2.0, decay_mult=0.0)
            for tower in ('cls_convs', 'reg_convs', 'mask_convs')
            for index in range(4)
        }
    )
)
