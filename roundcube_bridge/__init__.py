"""The autologin bridge between the product and Roundcube.

``tokens`` holds the pure, framework-free token code; ``plugin/`` holds the
Roundcube plugin (PHP) that redeems a token server-to-server.
"""
