/* SPDX-License-Identifier: MIT */
/* placeholder: being written */
typedef int ferry_placeholder_http;
