# expect: costly_constant
# Annotations run when the function is defined: this one multiplies two 40000 x 40000 matrices on import.
def activation_function(x: torch.ones(40000, 40000) @ torch.ones(40000, 40000)) -> torch.Tensor:
    return torch.tanh(x)
