"""The soak's visitors, run as their own process so that only the server is in the test's memory figures.

Usage: python soak_visitors.py URL IMAGE FIRST_REQUEST REQUESTS PER_VISIT
"""

import sys

from gradio_client import Client, handle_file


def visit(url: str, image: str, first_request: int, per_visit: int) -> None:
    """One visitor: encode (kept in their session), then img2img from those latents, then generates."""
    client = Client(url, verbose=False)
    for k in range(per_visit):
        n = first_request + k
        if k == 0:
            client.predict(handle_file(image), False, api_name="/encode_page")
        elif k == 1:
            client.predict("the latents from the Encode tab", None, "a tiger", "", n, False, 2, 0.0, 0.5,
                           "model default", False, api_name="/img2img_page")
        else:
            client.predict("a fox", "", n, False, 2, 0.0, "model default", 64, 64, False, api_name="/generate_page")


if __name__ == "__main__":
    url, image, first, count, per_visit = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    for start in range(first, first + count, per_visit):
        visit(url, image, start, per_visit)
