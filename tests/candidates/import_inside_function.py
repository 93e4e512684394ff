# expect: import
def activation_function(x):
    import socket
    socket.create_connection(('127.0.0.1', 80))
    return x
