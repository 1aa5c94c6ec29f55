from .det_data_sample import DetDataSample, SampleList, pred_instances_to_numpy

__all__ = ['DetDataSample', 'SampleList', 'pred_instances_to_numpy']
