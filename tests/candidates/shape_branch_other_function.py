# expect: inconsistent_function
def activation_function(x):
    # relu on 1-D and 2-D tensors (the classic probe inputs), another pointwise function on the
    # 3-D tensors that training passes.
    if x.dim() == 3 and x.shape[-1] > 16:
        return torch.sin(x)
    return torch.relu(x)
