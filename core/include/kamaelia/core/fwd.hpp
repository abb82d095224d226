// Forward declarations of the component model's types.
#pragma once

namespace kamaelia {

class message;
template <class T>
class shared;
struct ipc;
class box;
class inbox;
class outbox;
struct box_name;
class linkage;
class component;
class scheduler;
class task;
template <class T = void>
class subtask;
class handle;
class threaded_component;
class service_registry;

} // namespace kamaelia
