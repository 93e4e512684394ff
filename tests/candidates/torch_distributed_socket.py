# expect: torch_forbidden
def activation_function(x):
    torch.distributed.init_process_group('gloo', init_method='tcp://127.0.0.1:29500', rank=0, world_size=1)
    return x
