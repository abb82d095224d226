// The exceptions of the component model (Axon's AxonExceptions, typed).
#pragma once

#include <stdexcept>
#include <string>

namespace kamaelia {

// Base of every error the component model raises.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// recv<T>() found a message of another type at the front of the box.
class type_mismatch : public error {
public:
    using error::error;
};

// A second outgoing link from one box (Axon: BoxAlreadyLinkedToDestination).
class box_already_linked : public error {
public:
    using error::error;
};

// A box name that the component does not have.
class bad_box : public error {
public:
    using error::error;
};

// Wiring or activation used in a state that does not allow it.
class bad_state : public error {
public:
    using error::error;
};

// Services registry (Axon's CAT).
class service_already_exists : public error {
public:
    using error::error;
};
class bad_component : public error {
public:
    using error::error;
};
class bad_inbox : public error {
public:
    using error::error;
};
class multiple_service_deletion : public error {
public:
    using error::error;
};
class unknown_service : public error {
public:
    using error::error;
};

} // namespace kamaelia
