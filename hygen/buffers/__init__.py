"""hygen.buffers"""
