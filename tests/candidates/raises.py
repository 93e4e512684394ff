# expect: runtime_error
def activation_function(x):
    raise ValueError('I refuse to be evaluated')
