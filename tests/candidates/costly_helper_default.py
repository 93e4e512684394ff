# expect: costly_constant
# A helper's default value is computed once, when the program is loaded.
def _gate(z, k=((10 ** 60) ** 60) ** 60):
    return z * torch.sigmoid(z)


def activation_function(x):
    return _gate(x)
