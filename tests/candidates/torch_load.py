# expect: torch_forbidden
def activation_function(x):
    w = torch.load('/tmp/weights.pt')
    return x * w
