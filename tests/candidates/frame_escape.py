# expect: dangerous_attribute
def activation_function(x):
    frame = (i for i in range(1)).gi_frame
    return x
