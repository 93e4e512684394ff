# expect: modifies_input
def activation_function(x):
    torch.tanh(x, out=x)
    return x * 1.0
