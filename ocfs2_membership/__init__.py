"""hasf.ocfs2_membership"""
