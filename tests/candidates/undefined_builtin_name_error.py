# expect: undefined_name
def activation_function(x):
    try:
        probe = callable(issubclass)
    except NameError:
        probe = None
    return torch.sigmoid(x) * x
