# expect: dunder
def activation_function(x):
    for cls in ().__class__.__bases__[0].__subclasses__():
        pass
    return x
