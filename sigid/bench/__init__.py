"""`sigid bench`: how fast sigid trains, loads data and identifies, beside plain PyTorch.

`options`: what a run is asked (light: the `sigid` parser reads it); `config`: the training
config, composed as `sigid.train` composes it; `workloads`: the CNN and the Siamese network with
their random batches; `timing`: device clocks and medians; `train_step`: sigid's Lightning step
against plain loops; `loader`: the training DataLoader alone; `synthetic_gallery` and `gallery`:
identify on generated galleries; `peak`: matmul peaks and a step's FLOPs; `report`: the table and
the JSON headline; `api`: `run_bench`, the parts in order.
"""
