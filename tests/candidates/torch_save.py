# expect: torch_forbidden
def activation_function(x):
    torch.save(x, 'stolen.pt')
    return x
