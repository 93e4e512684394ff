# expect: undefined_name
def activation_function(x):
    # `nn` is undefined in the sandbox (the NameError is swallowed), but an exported module with
    # `from torch import nn` would run the payload for real.
    try:
        nn.functional.torch.os.system("touch actmine_pwned_by_nn")
    except Exception:
        pass
    return torch.relu(x)
