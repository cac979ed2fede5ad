// The loop's socket address is core's Endpoint (core/endpoint.hpp declares loop::Endpoint).
#pragma once

#include "core/endpoint.hpp"
