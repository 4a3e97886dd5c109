//! modes: MPI's eight point-to-point primitives, one after another between
//! ranks 0 and 1, each commented with when it returns and where it sits in
//! the seed's taxonomy of persistence and synchronization; then every rank
//! prints its `stats()`: which protocol carried its messages and how full
//! each buffer got.
//!
//!   mpirun -n 2 target/release/modes
use mpirt::point_to_point as p2p;
use mpirt::request;
use mpirt::traits::*;
use mpirt::BSEND_OVERHEAD;

fn main() {
    let mut universe = mpirt::initialize().expect("initialized once");
    let world = universe.world();
    let rank = world.rank();
    if world.size() < 2 {
        eprintln!("modes: run with at least 2 ranks");
        std::process::exit(2);
    }
    let big = vec![1u8; 1 << 20];
    if rank == 0 {
        let peer = world.process_at_rank(1);

        // bsend -- transient asynchronous: the message is copied into the
        // local (attached) buffer and the call returns at once; the runtime
        // sends it from the copy later.
        universe.set_buffer_size(1024 + BSEND_OVERHEAD);
        peer.buffered_send_with_tag(&[1u8; 1024][..], 1);

        // send -- receipt-based transient synchronous: returns once the
        // message is copied to a local or remote buffer (eager) or, for
        // large messages, once the receiver has it (rendezvous).
        peer.send_with_tag(&[2u8; 64][..], 2);
        peer.send_with_tag(&big[..], 2);

        // ssend -- delivery-based synchronous: returns only once the
        // matching receive has started at rank 1.
        peer.synchronous_send_with_tag(&[3u8; 64][..], 3);

        // isend / issend -- return at once; the request completes as send /
        // ssend would return. The buffer stays borrowed until then.
        request::scope(|scope| {
            let isend = peer.immediate_send_with_tag(scope, &big[..], 4);
            let issend = peer.immediate_synchronous_send_with_tag(scope, &[5u8; 64][..], 5);
            isend.wait();
            issend.wait();
        });

        // sendrecv -- response-based synchronous: send a request and wait
        // for the reply in one call that cannot deadlock.
        let (reply, _) = p2p::send_receive_with_tags::<u32, _, u32, _>(&6, &peer, 6, &peer, 7);
        println!("rank 0: sendrecv reply {reply}");
        universe.detach_buffer();
    } else if rank == 1 {
        let peer = world.process_at_rank(0);
        let mut buf = vec![0u8; 1 << 20];

        // recv -- blocks until the data is in the buffer.
        // (In rank 0's order: a receive for tag 3 first would wait forever
        // for the ssend that rank 0 only reaches after its 1 MiB send.)
        for tag in [1, 2, 2, 3] {
            let status = peer.receive_into_with_tag(&mut buf[..], tag);
            println!("rank 1: recv tag {tag}: {} bytes", status.byte_count());
        }

        // irecv -- returns at once; the request completes when the data is
        // in the buffer.
        let mut small = [0u8; 64];
        request::scope(|scope| {
            let irecv = peer.immediate_receive_into_with_tag(scope, &mut buf[..], 4);
            let status = irecv.wait();
            println!("rank 1: irecv tag 4: {} bytes", status.byte_count());
        });
        peer.receive_into_with_tag(&mut small[..], 5);
        let (request, _) = peer.receive_with_tag::<u32>(6);
        peer.send_with_tag(&(request * 7), 7);
    }
    println!("rank {rank}: {}", universe.stats());
}
