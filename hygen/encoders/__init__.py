"""hygen.encoders"""
