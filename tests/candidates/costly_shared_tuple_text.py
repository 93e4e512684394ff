# expect: costly_constant
# Each tuple holds the previous one twice: 2**40 elements once printed, from a few bytes of memory.
T = (0.5,)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
T = (T, T)
TEXT = f"{T}"


def activation_function(x):
    return x
