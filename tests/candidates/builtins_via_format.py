# expect: dangerous_attribute
def activation_function(x):
    leaked = '{0.relu.__globals__}'.format(F)
    return x
