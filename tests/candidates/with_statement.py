# expect: forbidden_statement
def activation_function(x):
    with torch.no_grad():
        return x.clone()
