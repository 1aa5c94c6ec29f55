from .deform_conv import DeformConv2d, ModulatedDeformConv2dPack, split_offset_mask
from .nms import polygon_nms

__all__ = ['DeformConv2d', 'ModulatedDeformConv2dPack', 'polygon_nms', 'split_offset_mask']
