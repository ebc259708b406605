"""hasf.cib"""
