# expect: runtime_error
def activation_function(x):
    # A 60 MB message: the worker caps it, the parent never holds it.
    raise ValueError('boom ' * 12_000_000)
