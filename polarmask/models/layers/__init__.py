from .deform_conv import DeformConv2d, ModulatedDeformConv2dPack, split_offset_mask

__all__ = ['DeformConv2d', 'ModulatedDeformConv2dPack', 'split_offset_mask']
