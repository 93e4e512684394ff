# expect: non_finite
def activation_function(x):
    # Finite wherever the classic probe points reach (|x| <= 3e4); NaN beyond 1e5.
    return torch.relu(x) + torch.where(x.abs() > 1e5, float('nan'), 0.0)
