# expect: python_escape
def activation_function(x):
    sines = torch.stack(list(map(math.sin, x.flatten())))
    return x * sines.reshape(x.shape).to(x.dtype)
