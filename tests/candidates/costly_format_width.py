# expect: costly_constant
WIDTH = 10 ** 10
LABEL = f"{1.0:>{WIDTH}}"


def activation_function(x):
    return torch.relu(x)
