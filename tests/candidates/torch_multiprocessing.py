# expect: torch_forbidden
def activation_function(x):
    torch.multiprocessing.Process(target=print).start()
    return x
