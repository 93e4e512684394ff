# expect: module_alias
def activation_function(x):
    t = torch
    return t.relu(x)
